"""Caption-source sets for ablations: keep only the captions of some corpora.

A spec is ``all``, ``only:<a>,<b>`` (captions of these sources only) or ``all-minus:<a>,<b>``
(every source but these). A caption's source is its entry in ``caption_source`` (aggregated
cuts) or the cut's ``source``. Cuts left without a caption are dropped.

``python -m toolkit.data.source_sets --spec all-minus:paraspeechcaps IN.jsonl.gz OUT.jsonl.gz``
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from lhotse import CutSet
from lhotse.cut import Cut

from toolkit.data.cuts import cut_custom

log = logging.getLogger(__name__)


def parse_spec(spec: str) -> tuple[str, set[str]]:
    """``(mode, sources)`` of a spec; mode is ``all``, ``only`` or ``minus``."""
    if spec == "all":
        return "all", set()
    mode, sep, names = spec.partition(":")
    sources = {s.strip() for s in names.split(",") if s.strip()}
    if not sep or mode not in ("only", "all-minus") or not sources:
        raise ValueError(
            f"source set {spec!r}: expected 'all', 'only:<a>,<b>' or 'all-minus:<a>,<b>'"
        )
    return ("only" if mode == "only" else "minus"), sources


def apply_source_set(cuts: Iterable[Cut], spec: str) -> Iterator[Cut]:
    """The cuts restricted to the captions of ``spec`` (cuts with none left are dropped)."""
    mode, sources = parse_spec(spec)
    for cut in cuts:
        if mode == "all":
            yield cut
            continue
        custom = cut_custom(cut)
        caps = list(custom.get("caption") or [])
        styles = list(custom.get("caption_style") or [""] * len(caps))
        srcs = list(custom.get("caption_source") or [custom.get("source", "")] * len(caps))
        keep = [(s in sources) == (mode == "only") for s in srcs]
        if all(keep):
            yield cut
            continue
        if not any(keep):
            continue
        new = dict(custom)
        new["caption"] = [c for c, k in zip(caps, keep, strict=True) if k]
        new["caption_style"] = [s for s, k in zip(styles, keep, strict=True) if k]
        if "caption_source" in custom:
            new["caption_source"] = [s for s, k in zip(srcs, keep, strict=True) if k]
        sup = dataclasses.replace(cut.supervisions[0], custom=new, text=new["caption"][0])
        yield cut.map_supervisions(lambda _s, sup=sup: sup)


def write_source_set(in_path: Path | str, out_path: Path | str, spec: str) -> tuple[int, int]:
    """Write the ``spec`` restriction of a manifest (atomically); returns ``(kept, total)``."""
    out_path = Path(out_path)
    tmp = out_path.with_name(out_path.name + f".tmp{os.getpid()}.jsonl.gz")
    total = kept = 0

    def counted(cuts: Iterable[Cut]) -> Iterator[Cut]:
        nonlocal total
        for c in cuts:
            total += 1
            yield c

    with CutSet.open_writer(tmp) as w:
        for cut in apply_source_set(counted(CutSet.from_jsonl_lazy(in_path)), spec):
            w.write(cut)
            kept += 1
    os.replace(tmp, out_path)
    log.info("%s: %d of %d cuts keep captions of %s", out_path, kept, total, spec)
    if kept == 0:
        raise ValueError(f"source set {spec!r} leaves no cut of {in_path}")
    return kept, total


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--spec", required=True)
    p.add_argument("input")
    p.add_argument("output")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    write_source_set(args.input, args.output, args.spec)


if __name__ == "__main__":
    main()
