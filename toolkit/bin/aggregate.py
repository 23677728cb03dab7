"""CaptionStew stage 1: aggregate per-source caption manifests into one training corpus.

``python -m toolkit.bin.aggregate --manifest-dir data/manifests --out-dir data/captionstew
--sources audiocaps,wavcaps --eval-manifests clotho_cuts_test.jsonl.gz --weights audiocaps=2
--fractions 0.04,0.1,0.4,1.0 --seed 0 --shar-dir data/shar``

Normalises and deduplicates captions, merges clips shared by several sources, drops clips that
leak into evaluation sets, writes nested subsets, weighted/mux manifests, an optional Lhotse
Shar export and a statistics report (printed as a table). See docs/aggregation.md.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from toolkit.bin.common import run_cli
from toolkit.config import ConfigError
from toolkit.data.aggregate import AggregateConfig, AggregateError, aggregate
from toolkit.data.aggregate.mix import SHAR_FORMATS
from toolkit.data.aggregate.text import TextOptions
from toolkit.data.leakage import MATCH_FIELDS
from toolkit.utils.logging import setup_logging

log = logging.getLogger("toolkit.aggregate")


def _bool(text: str) -> bool:
    low = text.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def _list(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def _weights(text: str) -> dict[str, float]:
    out = {}
    for item in _list(text):
        name, sep, value = item.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"expected source=weight, got {item!r}")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"weight of {name!r} is not a number") from None
    return out


def _jaccard(text: str) -> float | None:
    return None if text.strip().lower() in ("none", "off", "") else float(text)


def build_parser() -> argparse.ArgumentParser:
    d = AggregateConfig()
    t = TextOptions()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    a = p.add_argument
    a("--manifest-dir", type=Path, required=True, help="folder of <source>_cuts_<split>.jsonl.gz")
    a("--out-dir", type=Path, required=True, help="output folder")
    a("--sources", type=_list, default=None, help="a,b,... (default: every *_cuts_train found)")
    a("--priority", type=_list, default=None, help="merge priority a,b,... (default: --sources)")
    a("--eval-manifests", type=_list, default=[], help="evaluation manifests a,b,... to exclude")
    a("--blacklist", type=Path, default=None, help="file: one id to exclude per line")
    a("--leak-match", type=_list, default=list(d.leak_match), help=f"of {','.join(MATCH_FIELDS)}")
    a("--exclude-own-eval", type=_bool, default=d.exclude_own_eval, help="sources' dev/test too")
    a("--nfkc", type=_bool, default=t.nfkc)
    a("--lowercase", type=_bool, default=t.lowercase)
    a("--strip-quotes", type=_bool, default=t.strip_quotes)
    a("--near-dup-jaccard", type=_jaccard, default=t.near_dup_jaccard, help="float or none")
    a("--keep-captionless", type=_bool, default=d.keep_captionless)
    a("--fingerprint", type=_bool, default=d.fingerprint, help="content duplicates (loads audio)")
    a("--fingerprint-seconds", type=float, default=d.fingerprint_seconds)
    a("--weights", type=_weights, default={}, help="source=weight,... (default 1 each)")
    a("--fractions", type=lambda s: [float(x) for x in _list(s)], default=[], help="0.04,0.1,...")
    a("--counts", type=lambda s: [int(x) for x in _list(s)], default=[], help="clip counts")
    a("--seed", type=int, default=d.seed)
    a("--eval-splits", type=_list, default=list(d.eval_splits), help="splits without subsets")
    a("--shar-dir", type=Path, default=None, help="export the train set as Lhotse Shar here")
    a("--shar-format", choices=SHAR_FORMATS, default=d.shar_format)
    a("--shar-shard-size", type=int, default=d.shar_shard_size)
    a(
        "--shar-sampling-rate",
        type=int,
        default=d.shar_sampling_rate,
        help="store Shar audio mono at this rate (the training rate); 0: original audio",
    )
    a(
        "--shar-per-source",
        type=lambda v: v.lower() in ("1", "true", "yes"),
        default=d.shar_per_source,
        help="true: one Shar dir per source + train_sources[_<tag>].yaml mixing them by weight",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.out_dir / "aggregate.log")
    try:
        cfg = AggregateConfig(
            sources=args.sources,
            priority=args.priority,
            eval_manifests=[Path(x) for x in args.eval_manifests],
            blacklist=args.blacklist,
            leak_match=tuple(args.leak_match),
            exclude_own_eval=args.exclude_own_eval,
            text=TextOptions(args.nfkc, args.lowercase, args.strip_quotes, args.near_dup_jaccard),
            keep_captionless=args.keep_captionless,
            fingerprint=args.fingerprint,
            fingerprint_seconds=args.fingerprint_seconds,
            weights=args.weights,
            fractions=args.fractions,
            counts=args.counts,
            seed=args.seed,
            eval_splits=tuple(args.eval_splits),
            shar_dir=args.shar_dir,
            shar_format=args.shar_format,
            shar_shard_size=args.shar_shard_size,
            shar_sampling_rate=args.shar_sampling_rate or None,
            shar_per_source=args.shar_per_source,
        )
    except ValueError as e:  # bad option values
        raise ConfigError(str(e)) from e
    try:
        result = aggregate(args.manifest_dir, args.out_dir, cfg)
    except AggregateError as e:  # unknown sources, missing manifests
        raise ConfigError(str(e)) from e
    for split, stats in result.stats.items():
        print(f"\n## {split}\n{stats.table()}")
    for name, path in sorted(result.files.items()):
        log.info("%s: %s", name, path)
    return 0


def cli() -> None:
    run_cli(main)


if __name__ == "__main__":
    cli()
