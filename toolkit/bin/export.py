"""Export a run as a self-contained model directory: ``toolkit-export RUN_DIR OUT_DIR``.

``OUT_DIR`` gets ``config.json`` (the resolved config), ``model.safetensors`` (the weights; the
EMA weights when the run kept them), ``run.json``, the feature statistics and tokenizer the model
needs, and a ``README.md`` model card with the run's evaluation table. It loads wherever a run
dir is taken (``toolkit.load``, ``toolkit-evaluate --exp-dir``, ``toolkit-extract --run-dir``,
``encoder.init_from``) with the run's outputs exactly. ``--checkpoint`` exports a given weights
file of the run (e.g. an averaged ``model_avg5.pt``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from toolkit.bin.common import run_cli
from toolkit.runs import export_run, open_run
from toolkit.utils.logging import setup_logging


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", help="training run directory (config.yaml + model.pt/checkpoints)")
    p.add_argument("out_dir", help="new directory to write")
    p.add_argument("--checkpoint", help="weights file to export (default: model.pt, else newest)")
    args = p.parse_args(argv)
    setup_logging(None)
    run = open_run(args.run_dir, args.checkpoint)
    out = export_run(run, Path(args.out_dir))
    print(f"exported {run.weights_path()} to {out}")
    return 0


def cli() -> None:
    run_cli(main)


if __name__ == "__main__":
    cli()
