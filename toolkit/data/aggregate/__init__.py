"""CaptionStew aggregation (recipe stage 1): many per-source caption manifests → one corpus.

Reads ``<manifest_dir>/<source>_cuts_<split>.jsonl.gz`` (cuts following
:mod:`toolkit.data.cuts`) and writes under ``out_dir``::

    cuts_train.jsonl.gz              every kept training clip, sources interleaved
    cuts_train_<tag>.jsonl.gz        nested stratified subsets (tag 0.04, 0.1, n5000, ...)
    cuts_train_weighted.jsonl.gz     weights applied by deterministic repetition (if weights)
    cuts_dev.jsonl.gz, cuts_test.jsonl.gz
    sources/<source>_cuts_<split>.jsonl.gz   per-source manifests after filtering and merging
    mux_weights.json                 per-source manifests + CutSet.mux weights for streaming
    leakage/<source>_train.tsv       dropped training clips, with the id that matched
    stats/stats_<split>.{md,csv}, stats/*.png, summary.json

Per split, the sources are streamed three times in priority order (:func:`merge_split`):

1. **index**: every cut gets an ordinal; cuts sharing an ``audio_key`` (or, with
   ``fingerprint``, an audio fingerprint) are unioned into one group whose owner is the cut of
   the highest-priority source; training cuts matching the leakage references are marked, and a
   whole group is dropped when any member leaks.
2. **payloads**: the captions/labels of non-owner members are kept in memory (text only, and
   only for duplicates); skipped when there is no duplicate.
3. **write**: each owner is written with the union of its group's captions (normalised,
   (near-)duplicates removed, ``caption_source`` naming each caption's corpus) and merged labels.

Memory: about 8 bytes per cut (union-find array) + 8 (subset hash) + one dict entry per distinct
``audio_key``/fingerprint (~100 bytes) + the caption payloads of duplicate cuts + the statistics
(length histograms, vocabulary). No cut object is held beyond the one being processed.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from array import array
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from lhotse import CutSet
from lhotse.cut import Cut
from lhotse.utils import fastcopy

from toolkit.data.aggregate.ids import DisjointSet, audio_fingerprint
from toolkit.data.aggregate.mix import (
    SHAR_FORMATS,
    atomic_cut_writer,
    atomic_line_writer,
    concat_manifests,
    export_shar,
    export_shar_sources,
    interleave,
    stable_hash64,
    subset_ranks,
    subset_sizes,
    weighted_count,
    weighted_stream,
    write_mixed,
    write_subset_sizes,
)
from toolkit.data.aggregate.stats import SplitStats
from toolkit.data.aggregate.text import TextOptions, dedup_captions
from toolkit.data.cuts import cut_custom, cut_labels, is_label_key
from toolkit.data.leakage import MATCH_FIELDS, LeakageIndex
from toolkit.data.prepare.common import manifest_path

log = logging.getLogger(__name__)

__all__ = [
    "AggregateConfig",
    "AggregateError",
    "AggregateResult",
    "aggregate",
    "discover_sources",
    "merge_split",
]


class AggregateError(ValueError):
    """A user error in the aggregation options (unknown source, missing manifest, bad value)."""


@dataclasses.dataclass
class AggregateConfig:
    """Options of :func:`aggregate` (the CLI flags map one to one; see docs/aggregation.md).

    Args:
        sources: corpus names to aggregate; None → every ``*_cuts_train.jsonl.gz`` found.
        priority: merge priority (the first source of a duplicate group keeps its audio and its
            captions come first); sources not listed follow in ``sources`` order.
        eval_manifests: evaluation manifests whose clips must not appear in training.
        blacklist: file of ids (one per line) to drop from training.
        leak_match: ids of evaluation cuts compared with training cuts (``audio_key``, ``ytid``,
            ``orig_id``).
        exclude_own_eval: also use the selected sources' own dev/test manifests as leakage
            references for training.
        text: caption normalisation / near-duplicate options.
        keep_captionless: keep cuts left without any caption (default: drop and count them).
        fingerprint: also detect duplicates by audio content (loads audio; slow).
        fingerprint_seconds: seconds of audio hashed by the fingerprint.
        weights: ``{source: weight}`` (default 1); see :mod:`toolkit.data.aggregate.mix`.
        fractions, counts: nested training subsets (fractions of clips, absolute clip counts).
        seed: seed of the subset ranking, the repetition choices and the interleaving.
        eval_splits: the non-training splits aggregated (no subsets, no leakage filter).
        shar_dir: export the full training manifest as Lhotse Shar there (None: no export).
        shar_format: ``flac``, ``wav`` or ``reference`` (cuts only, audio left in place).
        shar_shard_size: cuts per Shar shard.
        shar_sampling_rate: with ``flac`` / ``wav``, Shar audio is stored mono at this rate (the
            training rate: no resampling in the loader); None keeps the original audio.
        shar_per_source: one Shar directory per source under ``shar_dir`` plus
            ``train_sources[_<tag>].yaml`` mixing them by ``weights`` (a ``data.train`` value);
            False: one Shar of the interleaved training manifest.
    """

    sources: list[str] | None = None
    priority: list[str] | None = None
    eval_manifests: list[Path] = dataclasses.field(default_factory=list)
    blacklist: Path | None = None
    leak_match: tuple[str, ...] = MATCH_FIELDS
    exclude_own_eval: bool = True
    text: TextOptions = dataclasses.field(default_factory=TextOptions)
    keep_captionless: bool = False
    fingerprint: bool = False
    fingerprint_seconds: float = 10.0
    weights: dict[str, float] = dataclasses.field(default_factory=dict)
    fractions: list[float] = dataclasses.field(default_factory=list)
    counts: list[int] = dataclasses.field(default_factory=list)
    seed: int = 0
    eval_splits: tuple[str, ...] = ("dev", "test")
    shar_dir: Path | None = None
    shar_format: str = "flac"
    shar_shard_size: int = 1000
    shar_sampling_rate: int | None = 16000
    shar_per_source: bool = False

    def __post_init__(self) -> None:
        if self.shar_format not in SHAR_FORMATS:
            raise AggregateError(
                f"shar_format must be one of {SHAR_FORMATS}, got {self.shar_format!r}"
            )
        bad = sorted(set(self.leak_match) - set(MATCH_FIELDS))
        if bad:
            raise AggregateError(f"unknown leak_match field(s) {bad}; known: {MATCH_FIELDS}")
        for name, w in self.weights.items():
            if w < 0:
                raise AggregateError(f"weight of {name!r} must be >= 0, got {w}")
        try:
            subset_sizes(1, self.fractions, self.counts)
        except ValueError as e:
            raise AggregateError(str(e)) from None


@dataclasses.dataclass
class AggregateResult:
    """What :func:`aggregate` wrote: ``files`` by name, ``stats`` by split, ``summary``."""

    files: dict[str, Path]
    stats: dict[str, SplitStats]
    summary: dict[str, Any]


def discover_sources(manifest_dir: Path | str, split: str = "train") -> list[str]:
    """Sorted names of the corpora with a ``<name>_cuts_<split>.jsonl.gz`` in ``manifest_dir``."""
    suffix = f"_cuts_{split}.jsonl.gz"
    return sorted(p.name[: -len(suffix)] for p in Path(manifest_dir).glob(f"*{suffix}"))


def _payload(cut: Cut, source: str) -> tuple[list[str], list[str], list[str]]:
    """Parallel raw ``(captions, styles, caption sources)`` of a cut."""
    c = cut_custom(cut)
    caps = c.get("caption")
    if caps is None:
        caps = [cut.supervisions[0].text] if cut.supervisions and cut.supervisions[0].text else []
    caps = [caps] if isinstance(caps, str) else [str(x) for x in caps]
    styles = list(c.get("caption_style") or [])
    if len(styles) != len(caps):  # not contract-conforming: pad with the generic style
        styles = (styles + ["short"] * len(caps))[: len(caps)]
    srcs = c.get("caption_source")
    if not isinstance(srcs, list) or len(srcs) != len(caps):
        srcs = [str(c.get("source") or source)] * len(caps)
    return caps, styles, srcs


def _merge_labels(base: dict[str, Any], other: dict[str, Any]) -> int:
    """Merge ``other`` into ``base`` in place: lists are unioned (order kept), a missing key is
    taken, a differing single label keeps ``base``'s value. Returns the number of conflicts."""
    conflicts = 0
    for key, value in other.items():
        if key not in base:
            base[key] = value
        elif isinstance(base[key], list) or isinstance(value, list):
            cur = base[key] if isinstance(base[key], list) else [base[key]]
            new = value if isinstance(value, list) else [value]
            base[key] = cur + [v for v in new if v not in cur]
        elif base[key] != value:
            conflicts += 1
    return conflicts


def _write_cut(cut: Cut, caps: list[str], styles: list[str], srcs: list[str], labels: dict) -> Cut:
    sup = cut.supervisions[0]
    custom = {k: v for k, v in (sup.custom or {}).items() if not is_label_key(k)}
    custom.update(caption=caps, caption_style=styles, caption_source=srcs, **labels)
    return fastcopy(cut, supervisions=[fastcopy(sup, text=caps[0] if caps else "", custom=custom)])


def merge_split(
    inputs: Sequence[tuple[str, Path]],
    split: str,
    out_dir: Path,
    cfg: AggregateConfig,
    leakage: LeakageIndex | None = None,
    stats: SplitStats | None = None,
) -> tuple[dict[str, Path], dict[str, np.ndarray]]:
    """Filter, merge and normalise one split (the three passes of the module docstring).

    Args:
        inputs: ``(source, manifest)`` in priority order.
        leakage: references to drop (training only); dropped cuts are listed in
            ``out_dir/leakage/<source>_<split>.tsv``.

    Returns:
        ``({source: per-source output manifest}, {source: (n,) uint64 hashes of its kept cut ids
        in file order})``.
    """
    stats = stats or SplitStats(split)
    ds = DisjointSet()
    first_of_key: dict[str, int] = {}
    leaked: dict[int, tuple[str, str]] = {}
    for source, path in inputs:  # pass 1: index
        for cut in CutSet.from_jsonl_lazy(path):
            o = ds.add()
            c = cut_custom(cut)
            stats.add_input(source, cut.duration, len(_payload(cut, source)[0]))
            keys = [f"ak:{c['audio_key']}"] if c.get("audio_key") else []
            if cfg.fingerprint and (fp := audio_fingerprint(cut, cfg.fingerprint_seconds)):
                keys.append(fp)
            for key in keys:
                if key in first_of_key:
                    ds.union(first_of_key[key], o)
                else:
                    first_of_key[key] = o
            if leakage is not None and (m := leakage.match(cut)):
                leaked[o] = m
    leaked_roots = {ds.find(o) for o in leaked}
    log.info(
        "%s: %d cuts, %d merged into duplicates, %d leaking",
        split,
        len(ds),
        ds.num_unions,
        len(leaked),
    )

    extra: dict[int, list[tuple[list[str], list[str], list[str], dict, str]]] = {}
    if ds.num_unions:  # pass 2: payloads of duplicates
        o = -1
        for source, path in inputs:
            for cut in CutSet.from_jsonl_lazy(path):
                o += 1
                r = ds.find(o)
                if r != o and r not in leaked_roots:
                    extra.setdefault(r, []).append(
                        (*_payload(cut, source), cut_labels(cut), source)
                    )

    outputs: dict[str, Path] = {}
    hashes: dict[str, np.ndarray] = {}
    leak_files: dict[str, Any] = {}
    o = -1
    try:
        for source, path in inputs:  # pass 3: write
            out = out_dir / "sources" / manifest_path("", source, split).name
            hs = array("Q")
            with atomic_cut_writer(out) as writer:
                for cut in CutSet.from_jsonl_lazy(path):
                    o += 1
                    r = ds.find(o)
                    if r in leaked_roots:
                        stats.count(source, "leaked")
                        if source not in leak_files:
                            leak_files[source] = _open_leak_file(out_dir, source, split)
                        c = cut_custom(cut)
                        why, matched = leaked.get(o, ("same_audio_as_leaked", ""))
                        leak_files[source].write(
                            f"{cut.id}\t{c.get('audio_key', '')}\t{c.get('orig_id', '')}\t"
                            f"{why}\t{matched}\n"
                        )
                        continue
                    if r != o:
                        stats.count(source, "merged_away")
                        continue
                    caps, styles, srcs = _payload(cut, source)
                    labels = cut_labels(cut)
                    for caps2, styles2, srcs2, labels2, _ in extra.pop(o, []):
                        caps, styles, srcs = caps + caps2, styles + styles2, srcs + srcs2
                        stats.count(source, "label_conflicts", _merge_labels(labels, labels2))
                    caps, styles, srcs, dropped = dedup_captions(caps, styles, srcs, cfg.text)
                    for reason, n in dropped.items():
                        stats.count(source, f"dup_{reason}", n)
                    if not caps and not cfg.keep_captionless:
                        stats.count(source, "no_caption")
                        continue
                    if cut.supervisions:
                        cut = _write_cut(cut, caps, styles, srcs, labels)
                    writer.write(cut)
                    domain = str(cut_custom(cut).get("domain", "unknown"))
                    stats.add_output(source, domain, cut.duration, caps, styles)
                    hs.append(stable_hash64(cfg.seed, cut.id))
            outputs[source] = out
            hashes[source] = np.frombuffer(hs, dtype=np.uint64).copy()
    finally:
        for f in leak_files.values():
            f.close()
    return outputs, hashes


def _open_leak_file(out_dir: Path, source: str, split: str) -> Any:
    path = out_dir / "leakage" / f"{source}_{split}.tsv"
    path.parent.mkdir(parents=True, exist_ok=True)
    f = open(path, "w", encoding="utf-8")  # closed by merge_split
    f.write("cut_id\taudio_key\torig_id\treason\tmatched_id\n")
    return f


def _priority_order(sources: list[str], priority: list[str] | None) -> list[str]:
    first = [s for s in (priority or []) if s in sources]
    return first + [s for s in sources if s not in first]


def aggregate(
    manifest_dir: Path | str, out_dir: Path | str, cfg: AggregateConfig | None = None
) -> AggregateResult:
    """Run the whole aggregation (see the module docstring for what is written).

    Raises:
        AggregateError: no training manifest for a requested source (or none at all), a weight
            for an unknown source.
    """
    cfg = cfg or AggregateConfig()
    manifest_dir, out_dir = Path(manifest_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sources = list(cfg.sources) if cfg.sources else discover_sources(manifest_dir)
    if not sources:
        raise AggregateError(f"no *_cuts_train.jsonl.gz manifest in {manifest_dir}")
    missing = [s for s in sources if not manifest_path(manifest_dir, s, "train").is_file()]
    if missing:
        raise AggregateError(f"no training manifest for {missing} in {manifest_dir}")
    unknown = sorted(set(cfg.weights) - set(sources))
    if unknown:
        raise AggregateError(f"weights given for unknown source(s) {unknown}; sources: {sources}")
    order = _priority_order(sources, cfg.priority)
    log.info("sources in priority order: %s", ", ".join(order))

    absent = [str(p) for p in [*cfg.eval_manifests, cfg.blacklist] if p and not Path(p).is_file()]
    if absent:
        raise AggregateError(f"evaluation manifest / blacklist not found: {absent}")
    leakage = LeakageIndex(cfg.leak_match)
    for p in cfg.eval_manifests:
        leakage.add_manifest(p)
    if cfg.exclude_own_eval:
        for s in order:
            for split in cfg.eval_splits:
                if (p := manifest_path(manifest_dir, s, split)).is_file():
                    leakage.add_manifest(p)
    if cfg.blacklist is not None:
        log.info("blacklist %s: %d ids", cfg.blacklist, leakage.add_blacklist(cfg.blacklist))

    files: dict[str, Path] = {}
    all_stats: dict[str, SplitStats] = {}
    summary: dict[str, Any] = {"sources": order, "seed": cfg.seed}

    # training split
    stats = all_stats["train"] = SplitStats("train")
    inputs = [(s, manifest_path(manifest_dir, s, "train")) for s in order]
    per_source, hashes = merge_split(inputs, "train", out_dir, cfg, leakage, stats)
    kept = [s for s in order if len(hashes[s])]
    ranks = dict(zip(kept, subset_ranks([hashes[s] for s in kept]), strict=True))
    total = sum(len(hashes[s]) for s in kept)
    sizes = subset_sizes(total, cfg.fractions, cfg.counts)
    files["train"] = out_dir / "cuts_train.jsonl.gz"
    for tag in sizes:
        files[f"train_{tag}"] = out_dir / f"cuts_train_{tag}.jsonl.gz"
    write_mixed(
        [per_source[s] for s in kept],
        [ranks[s] for s in kept],
        files["train"],
        {tag: files[f"train_{tag}"] for tag in sizes},
        sizes,
        cfg.seed,
    )
    write_subset_sizes(sizes, out_dir)
    summary["subsets"] = {
        tag: {"clips": n, "per_source": {s: int((ranks[s] < n).sum()) for s in kept}}
        for tag, n in sizes.items()
    }

    weights = {s: float(cfg.weights.get(s, 1.0)) for s in order}
    mux = {
        s: {
            "manifest": str(per_source[s]),
            "weight": weights[s],
            "num_cuts": len(hashes[s]),
            "hours": stats.sources[s].hours,
            "mux_weight": len(hashes[s]) * weights[s],
        }
        for s in order
    }
    hours_w = sum(stats.sources[s].hours * weights[s] for s in order) or 1.0
    for s, v in mux.items():
        v["hours_share"] = round(stats.sources[s].hours * weights[s] / hours_w, 6)
    files["mux_weights"] = out_dir / "mux_weights.json"
    files["mux_weights"].write_text(json.dumps(mux, indent=1))
    if cfg.weights:
        use = [s for s in kept if weights[s] > 0]
        streams = [weighted_stream(per_source[s], hashes[s], weights[s]) for s in use]
        expected = [weighted_count(hashes[s], weights[s]) for s in use]
        files["train_weighted"] = out_dir / "cuts_train_weighted.jsonl.gz"
        with atomic_line_writer(files["train_weighted"]) as f:
            for _, line in interleave(streams, expected, cfg.seed):
                f.write(line)
        summary["weighted_clips"] = dict(zip(use, expected, strict=True))

    # evaluation splits: merged and normalised, no leakage filter, no subsets
    for split in cfg.eval_splits:
        inputs = [(s, p) for s in order if (p := manifest_path(manifest_dir, s, split)).is_file()]
        if not inputs:
            continue
        all_stats[split] = SplitStats(split)
        outs, _ = merge_split(inputs, split, out_dir, cfg, None, all_stats[split])
        files[split] = out_dir / f"cuts_{split}.jsonl.gz"
        concat_manifests([outs[s] for s, _ in inputs], files[split])

    if cfg.shar_dir is not None and cfg.shar_per_source:
        exported = export_shar_sources(
            {s: per_source[s] for s in kept},
            ranks,
            weights,
            Path(cfg.shar_dir),
            sizes,
            cfg.shar_format,
            cfg.shar_shard_size,
            cfg.shar_sampling_rate,
        )
        files.update(exported)
        summary["shar"] = {k: str(v) for k, v in exported.items()}
    elif cfg.shar_dir is not None:
        shards = export_shar(
            files["train"],
            Path(cfg.shar_dir),
            cfg.shar_format,
            cfg.shar_shard_size,
            cfg.shar_sampling_rate,
        )
        write_subset_sizes(sizes, Path(cfg.shar_dir))
        summary["shar"] = {k: len(v) for k, v in shards.items()}
        files["shar"] = Path(cfg.shar_dir)

    for split, st in all_stats.items():
        extra = {
            f"subset {t}": f"{v['clips']} clips" for t, v in summary.get("subsets", {}).items()
        }
        written = st.write(out_dir / "stats", extra if split == "train" else None)
        files.update({f"stats_{split}_{k}": v for k, v in written.items()})
        summary[split] = next(r for r in st.rows() if r["group"] == "total")
    files["summary"] = out_dir / "summary.json"
    files["summary"].write_text(json.dumps(summary, indent=1, default=str))
    return AggregateResult(files, all_stats, summary)
