"""Average the weights of a run's last N checkpoints into one model file (icefall's ``--avg``).

``python -m toolkit.bin.average --exp-dir exp/x --avg 3 [-o exp/x/model_avg3.pt] [--use-ema]``
averages ``exp/x/checkpoints/checkpoint-<step>.pt`` (the newest 3);
``--checkpoints a.pt b.pt ...`` averages the files given instead. The output has the layout of
the train CLI's ``model.pt`` (``model``, ``config``, ``step``, plus ``averaged_from``), so
``toolkit.bin.evaluate`` and ``toolkit.inference.load_encoder(run, checkpoint=...)`` take it.
``--use-ema`` averages the checkpoints' EMA weights (``train.ema_decay``) instead of the model's.
Files are read without running code from them (``torch.load(weights_only=True)``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from toolkit.bin.common import run_cli
from toolkit.config import ConfigError
from toolkit.train.average import average_to_file, run_dir_of, select_checkpoints
from toolkit.utils.logging import setup_logging
from toolkit.weights import CheckpointError


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--exp-dir",
        help="run directory: its newest --avg checkpoints are averaged; its config.yaml is used "
        "when the checkpoints hold no config; the default output goes there",
    )
    p.add_argument("--avg", type=int, help="how many checkpoints (with --checkpoints: all given)")
    p.add_argument("--checkpoints", nargs="+", metavar="FILE", help="average these files instead")
    p.add_argument("-o", "--output", help="output file (default: RUN/model_avg<N>.pt)")
    p.add_argument(
        "--use-ema", action="store_true", help="average the EMA weights (key 'ema') instead"
    )
    args = p.parse_args(argv)
    setup_logging(None)
    if args.checkpoints:
        files = [Path(f) for f in args.checkpoints]
        if args.avg is not None and args.avg != len(files):
            raise ConfigError(f"--avg {args.avg} but {len(files)} --checkpoints were given")
        run = Path(args.exp_dir) if args.exp_dir else None
    elif args.exp_dir:
        if args.avg is None:
            raise ConfigError("--exp-dir needs --avg N (how many of the newest checkpoints)")
        run = Path(args.exp_dir)
        if not run.is_dir():
            raise ConfigError(f"--exp-dir: {run} does not exist")
        files = None
    else:
        raise ConfigError("give --exp-dir RUN --avg N, or --checkpoints FILE [FILE ...]")
    try:
        if files is None:
            files = select_checkpoints(run, args.avg)
        default_dir = run if run is not None else run_dir_of(files[-1])
        out = Path(args.output) if args.output else default_dir / f"model_avg{len(files)}.pt"
        average_to_file(files, out, run, use_ema=args.use_ema)
    except CheckpointError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(out)
    return 0


def cli() -> None:
    run_cli(main)


if __name__ == "__main__":
    cli()
