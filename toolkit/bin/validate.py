"""Stage 1: validate/concatenate cut manifests per split and print corpus statistics.

``python -m toolkit.bin.validate --split train=a.jsonl.gz,b.jsonl.gz --split dev=... --out-dir data``
writes ``<out-dir>/cuts_<split>.jsonl.gz`` and ``<out-dir>/stats.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
from itertools import chain
from pathlib import Path

from lhotse import CutSet

from toolkit.bin.common import run_cli
from toolkit.config import ConfigError
from toolkit.data.validate import corpus_stats, format_stats, validate_cuts
from toolkit.utils.logging import setup_logging

log = logging.getLogger("toolkit.validate")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--split", action="append", required=True, help="NAME=manifest[,manifest...]")
    p.add_argument("--out-dir", required=True)
    p.add_argument(
        "--no-audio-check", action="store_true", help="skip the audio-file existence check"
    )
    p.add_argument(
        "--decode-audio",
        action="store_true",
        help="decode every clip and drop those that cannot be decoded or hold NaN/Inf samples "
        "(reason bad_audio); reads all audio once",
    )
    args = p.parse_args(argv)
    setup_logging()
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = {}
    for spec in args.split:
        name, _, files = spec.partition("=")
        paths = [Path(f) for f in files.split(",") if f]
        if not name or not paths:
            raise ConfigError(f"--split {spec!r}: expected NAME=manifest[,manifest...]")
        for pth in paths:
            if not pth.is_file():
                raise ConfigError(f"--split {name}: manifest {pth} does not exist")
        cuts = chain.from_iterable(CutSet.from_file(pth) for pth in paths)
        kept, reasons = validate_cuts(
            cuts, check_audio=not args.no_audio_check, decode_audio=args.decode_audio
        )
        kept.to_file(out / f"cuts_{name}.jsonl.gz")
        stats = corpus_stats(kept)
        stats["dropped"] = dict(reasons)
        report[name] = stats
        print(format_stats(name, stats))
        log.info("wrote %s", out / f"cuts_{name}.jsonl.gz")
    (out / "stats.json").write_text(json.dumps(report, indent=2))
    log.info("statistics in %s", out / "stats.json")
    return 0


def cli() -> None:
    run_cli(main)


if __name__ == "__main__":
    cli()
