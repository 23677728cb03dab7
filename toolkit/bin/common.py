"""Shared CLI plumbing: ``--config`` files + ``key=value`` overrides → validated config."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from toolkit.config import ConfigError, load_config
from toolkit.registry import import_plugins
from toolkit.schema import check_top_level
from toolkit.utils.malloc import keep_freed_memory
from toolkit.weights import CheckpointError


def add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config", "-c", action="append", default=[], help="YAML config (repeatable; later wins)"
    )
    p.add_argument(
        "overrides", nargs="*", help="dotted overrides, e.g. optim.lr=3e-4 train.max_steps=100"
    )


def config_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """Load ``--config`` files, apply overrides, import ``plugins:``, check sections."""
    cfg = load_config(args.config, args.overrides)
    import_plugins(cfg.get("plugins"))
    check_top_level(cfg)
    return cfg


def run_cli(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> None:
    """Run ``main``; config errors become one line on stderr and exit code 2. Freed memory is
    kept for reuse first (:func:`toolkit.utils.malloc.keep_freed_memory`)."""
    keep_freed_memory()
    try:
        sys.exit(main(argv) or 0)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        sys.exit(2)
    except CheckpointError as e:  # unreadable or unsafe checkpoint: one line, no traceback
        print(f"checkpoint error: {e}", file=sys.stderr)
        sys.exit(1)
