"""Logging set-up for CLIs: console + a human-readable log file in the run directory."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s [%(name)s] %(message)s"


def setup_logging(log_file: Path | None = None, rank: int = 0, level: int = logging.INFO) -> None:
    """INFO to stderr (rank 0 only; other ranks warnings) and to ``log_file`` if given."""
    root = logging.getLogger()
    root.setLevel(level)
    for h in list(root.handlers):
        root.removeHandler(h)
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(level if rank == 0 else logging.WARNING)
    console.setFormatter(logging.Formatter(FORMAT, "%H:%M:%S"))
    root.addHandler(console)
    if log_file is not None and rank == 0:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        fh = logging.FileHandler(log_file)
        fh.setFormatter(logging.Formatter(FORMAT))
        root.addHandler(fh)
    for noisy in ("lhotse", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
