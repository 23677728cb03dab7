"""The study report over a grid of runs: tables (Markdown + CSV) and plots.

``python -m toolkit.bin.report --runs exp/study/* --out-dir exp/study/report``

Reads each run's ``eval/results.csv`` (stage 5; rows carry the run's ``tags``: objective,
fraction, init, source_set, and its seed) and writes ``study.md``, ``study.csv``,
``plot_scaling.png`` (score vs data fraction, one line per objective) and
``plot_init_gain.png`` (gain from supervised initialisation per data fraction).
"""

from __future__ import annotations

import argparse
import csv
import logging
from pathlib import Path

from toolkit.bin.common import run_cli
from toolkit.config import ConfigError
from toolkit.evaluate.study import load_study, plot_init_gain, plot_scaling, render_study
from toolkit.utils.logging import setup_logging

log = logging.getLogger("toolkit.report")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", nargs="+", required=True, help="run directories (with eval/)")
    p.add_argument("--out-dir", required=True)
    args = p.parse_args(argv)
    out = Path(args.out_dir)
    setup_logging()
    rows = load_study([Path(r) for r in args.runs])
    if not rows:
        raise ConfigError(f"--runs: no eval/results.csv in any of {len(args.runs)} run dirs")
    md, csv_rows = render_study(rows)
    out.mkdir(parents=True, exist_ok=True)
    (out / "study.md").write_text(md, encoding="utf-8")
    with open(out / "study.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(csv_rows[0]) if csv_rows else ["family"])
        w.writeheader()
        w.writerows(csv_rows)
    plot_scaling(rows, out / "plot_scaling.png")
    plot_init_gain(rows, out / "plot_init_gain.png")
    print(md)
    log.info("study report in %s (study.md, study.csv, plot_*.png)", out)
    return 0


def cli() -> None:
    run_cli(main)


if __name__ == "__main__":
    cli()
