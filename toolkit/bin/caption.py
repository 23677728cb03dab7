"""Caption audio files: ``toolkit-caption --model M FILES|DIR`` (captioning or hybrid models).

Output: TSV ``path, caption`` (header first) or JSON lines (``--json``). Decoding: ``--method
beam`` (default, ``--beam 4``), ``greedy`` or ``nucleus``; ``--max-len`` tokens.
"""

from __future__ import annotations

import argparse

from toolkit.bin.common import run_cli
from toolkit.bin.use_common import add_model_args, run_over_files
from toolkit.config import ConfigError
from toolkit.utils.logging import setup_logging


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_args(p)
    p.add_argument("--method", default="beam", choices=["beam", "greedy", "nucleus"])
    p.add_argument("--beam", type=int, default=4, help="beam size (method beam)")
    p.add_argument("--max-len", type=int, default=30, help="longest caption in tokens")
    p.add_argument("inputs", nargs="+", metavar="FILES|DIR")
    args = p.parse_args(argv)
    setup_logging(None)
    from toolkit.api import load

    model = load(args.model, device=args.device)
    if not model.can_caption:
        raise ConfigError(
            f"--model {args.model}: its {model._objective_name()} objective has no decoder; "
            "captioning needs a captioning or hybrid model"
        )

    def results(paths: list[str], audio: list) -> list[dict]:
        caps = model.caption(
            audio, model.sampling_rate, args.method, beam=args.beam, max_len=args.max_len
        )
        return [{"path": p, "caption": c} for p, c in zip(paths, caps)]

    return run_over_files(args, model, ["path", "caption"], results)


def cli() -> None:
    run_cli(main)


if __name__ == "__main__":
    cli()
