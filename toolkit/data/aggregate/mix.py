"""Mixing the per-source manifests: interleaved train manifest, nested subsets, weights, Shar.

* Every kept cut gets a seeded 64-bit hash of its id (:func:`stable_hash64`).
* **Nested stratified subsets** (:func:`subset_ranks`): within each source the cuts are ranked
  by hash; a cut of within-source rank ``r`` among ``n`` gets the quantile ``(r + 0.5) / n``;
  all cuts are then ordered globally by (quantile, hash). A subset of ``N`` clips is the prefix
  of length ``N`` of that order, so subsets are strictly nested (smaller ⊂ larger), each source
  contributes ``N * n_s / n_total`` clips up to ±1 (stratified by clip count), and the same seed
  gives the same subsets.
* **Interleaving** (:func:`interleave`): the per-source streams are merged by drawing, at each
  step, a source with probability proportional to its remaining clips (seeded), so every part
  of the output file has the same source mix (good for lazily read manifests, whose sampler
  only shuffles within a buffer).
* **Weights** (:func:`weighted_stream`): a weight ``w`` makes a source appear ``w`` times per
  epoch: ``floor(w)`` full copies plus a deterministic hash-chosen fraction ``w - floor(w)``;
  copies after the first get ids ``<id>_rep<k>``. The hours share of a source is then
  ``hours_s * w_s / sum(hours * w)`` — what ``CutSet.mux`` gives with per-draw weights
  ``num_cuts_s * w_s`` (written to ``mux_weights.json`` for streaming instead).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import math
import os
import random
from collections.abc import Iterable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import IO, Any, TypeVar

import numpy as np
from lhotse import CutSet
from lhotse.utils import fastcopy

from toolkit.data.sources import RANK_KEY, SUBSETS_FILE

T = TypeVar("T")
SHAR_FORMATS = ("flac", "wav", "reference")
_END = object()


def stable_hash64(seed: int, text: str) -> int:
    """Seeded 64-bit hash of ``text`` (stable across processes, machines and Python versions)."""
    digest = hashlib.blake2b(f"{seed}\x00{text}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def unit_interval(h: int, salt: int) -> float:
    """A uniform number in [0, 1) derived from hash ``h`` and ``salt``."""
    digest = hashlib.blake2b(h.to_bytes(8, "little") + salt.to_bytes(8, "little"), digest_size=8)
    return int.from_bytes(digest.digest(), "little") / 2.0**64


@contextlib.contextmanager
def atomic_cut_writer(path: Path) -> Iterator[Any]:
    """A Lhotse cut writer to a temporary file that replaces ``path`` on success."""
    path.parent.mkdir(parents=True, exist_ok=True)
    stem = path.name.removesuffix(".gz").removesuffix(".jsonl")
    tmp = path.with_name(f"{stem}.tmp{os.getpid()}.jsonl.gz")
    try:
        with CutSet.open_writer(tmp) as writer:
            yield writer
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def subset_tag(fraction: float | None = None, count: int | None = None) -> str:
    """File tag of a subset: the fraction as Python prints it (``0.04``, ``1.0``), ``n1000`` for
    an absolute clip count."""
    return str(float(fraction)) if fraction is not None else f"n{count}"


def subset_sizes(
    total: int, fractions: Sequence[float] = (), counts: Sequence[int] = ()
) -> dict[str, int]:
    """``{tag: number of clips}`` for the requested fractions of ``total`` (rounded half up, at
    least 1) and clip counts (at most ``total``).

    Raises:
        ValueError: a fraction outside (0, 1] or a count < 1.
    """
    sizes: dict[str, int] = {}
    for f in fractions:
        if not 0.0 < f <= 1.0:
            raise ValueError(f"subset fraction must be in (0, 1], got {f}")
        sizes[subset_tag(fraction=f)] = max(1, math.floor(f * total + 0.5)) if total else 0
    for n in counts:
        if n < 1:
            raise ValueError(f"subset clip count must be >= 1, got {n}")
        sizes[subset_tag(count=n)] = min(n, total)
    return sizes


def subset_ranks(hashes: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Global stratified rank of every cut (see the module docstring).

    Args:
        hashes: per source, the ``(n_s,)`` uint64 hashes of its cuts in file order.

    Returns:
        Per source, the ``(n_s,)`` int64 global ranks (0 = first taken), a permutation of
        ``0..sum(n_s)-1`` over all sources.
    """
    quantiles, keys, src = [], [], []
    for i, h in enumerate(hashes):
        n = len(h)
        within = np.empty(n, dtype=np.int64)
        within[np.argsort(h, kind="stable")] = np.arange(n)
        quantiles.append((within + 0.5) / max(n, 1))
        keys.append(h)
        src.append(np.full(n, i, dtype=np.int64))
    if not hashes:
        return []
    q, k, s = np.concatenate(quantiles), np.concatenate(keys), np.concatenate(src)
    order = np.lexsort((s, k, q))  # primary quantile, then hash, then source index
    ranks = np.empty(len(order), dtype=np.int64)
    ranks[order] = np.arange(len(order))
    out, start = [], 0
    for h in hashes:
        out.append(ranks[start : start + len(h)])
        start += len(h)
    return out


def interleave(
    streams: Sequence[Iterable[T]], expected: Sequence[float], seed: int
) -> Iterator[tuple[int, T]]:
    """Merge ``streams`` into one, yielding ``(stream index, item)``.

    At each step a stream is drawn with probability proportional to its expected number of
    remaining items (``expected[i]`` minus what it already gave, at least 1); an exhausted stream
    leaves the draw. Deterministic for a given ``seed``.
    """
    rng = random.Random(seed)
    its = [iter(s) for s in streams]
    left = [float(e) for e in expected]
    active = list(range(len(its)))
    while active:
        weights = [max(left[i], 1.0) for i in active]
        i = rng.choices(active, weights=weights)[0]
        item = next(its[i], _END)
        if item is _END:
            active.remove(i)
            continue
        left[i] -= 1.0
        yield i, item


def read_lines(path: Path) -> Iterator[str]:
    """The JSON lines of a ``.jsonl.gz`` manifest, unparsed (the mixing passes copy cuts
    verbatim, which is ~10x faster than deserialising and re-serialising Lhotse cuts)."""
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield line if line.endswith("\n") else line + "\n"


@contextlib.contextmanager
def atomic_line_writer(path: Path) -> Iterator[IO[str]]:
    """A gzip text file (``.jsonl.gz``) written to a temporary name, renamed on success."""
    path.parent.mkdir(parents=True, exist_ok=True)
    stem = path.name.removesuffix(".gz").removesuffix(".jsonl")
    tmp = path.with_name(f"{stem}.tmp{os.getpid()}.jsonl.gz")
    try:
        with gzip.open(tmp, "wt", encoding="utf-8") as f:
            yield f
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def with_cut_id(line: str, cut_id: str) -> str:
    """A cut JSON line with its ``id`` replaced."""
    d = json.loads(line)
    d["id"] = cut_id
    return json.dumps(d, ensure_ascii=False) + "\n"


def weighted_stream(path: Path, hashes: np.ndarray, weight: float) -> Iterator[str]:
    """The cut lines of one per-source manifest repeated ``weight`` times (module docstring).

    Round ``k`` (``k = 0 .. ceil(weight) - 1``) re-reads the manifest; a cut is in the last,
    partial round when ``unit_interval(hash, k) < weight - floor(weight)``. Copies of rounds
    ``k >= 1`` are renamed ``<id>_rep<k>``.
    """
    if weight < 0:
        raise ValueError(f"weight must be >= 0, got {weight}")
    rounds = math.ceil(weight)
    for k in range(rounds):
        frac = weight - k  # >= 1 for a full round
        for line, h in zip(read_lines(path), hashes, strict=True):
            if frac >= 1.0 or unit_interval(int(h), k) < frac:
                yield line if k == 0 else with_cut_id(line, f"{json.loads(line)['id']}_rep{k}")


def weighted_count(hashes: np.ndarray, weight: float) -> int:
    """Number of cuts :func:`weighted_stream` yields (computed from the hashes alone)."""
    full = math.floor(weight)
    frac = weight - full
    part = sum(unit_interval(int(h), full) < frac for h in hashes) if frac > 0 else 0
    return full * len(hashes) + part


def training_audio(cut: Any, sampling_rate: int) -> Any:
    """``cut`` as the training loader sees it: its audio read by the loader's own reader
    (:func:`toolkit.data.dataset.load_mono`: channels averaged, resampled to
    ``sampling_rate``) into an in-memory mono recording (float32 WAV bytes, so nothing is
    rounded before the Shar encoder); the id and supervisions are kept (one copy each, channel
    0), segment times relative to the cut as before."""
    import io

    import soundfile as sf
    from lhotse import AudioSource, MonoCut, Recording

    from toolkit.data.dataset import load_mono

    audio = load_mono(cut, sampling_rate)
    buf = io.BytesIO()
    sf.write(buf, audio, sampling_rate, format="WAV", subtype="FLOAT")
    rec = Recording(
        id=cut.id,
        sources=[AudioSource(type="memory", channels=[0], source=buf.getvalue())],
        sampling_rate=sampling_rate,
        num_samples=len(audio),
        duration=len(audio) / sampling_rate,
    )
    sups = [fastcopy(s, channel=0, recording_id=cut.id) for s in cut.supervisions]
    return MonoCut(
        id=cut.id, start=0.0, duration=rec.duration, channel=0, recording=rec,
        supervisions=sups, custom=cut.custom,
    )  # fmt: skip


def export_shar(
    cuts_path: Path,
    shar_dir: Path,
    audio_format: str = "flac",
    shard_size: int = 1000,
    sampling_rate: int | None = None,
) -> dict[str, list[str]]:
    """Write a manifest as Lhotse Shar shards under ``shar_dir``.

    Args:
        audio_format: ``flac`` / ``wav``: the audio of every cut (only its segment) is encoded
            into ``recording.<shard>.tar``; ``reference``: only ``cuts.<shard>.jsonl.gz`` is
            written and the cuts keep pointing to the original audio files.
        sampling_rate: with ``flac`` / ``wav``, store the audio mono (channels averaged) at this
            rate — what the training loader makes of it anyway, so training reads it without
            resampling (6× less CPU per clip for 48 kHz stereo sources, bench/README.md).
            None: the original rate and channels. Ignored for ``reference``.

    Returns:
        ``{field: [shard paths]}`` (Lhotse's return value). Read back with
        ``CutSet.from_shar(in_dir=shar_dir)``.
    """
    if audio_format not in SHAR_FORMATS:
        raise ValueError(f"unknown Shar audio format {audio_format!r}; known: {SHAR_FORMATS}")
    fields = {} if audio_format == "reference" else {"recording": audio_format}
    shar_dir.mkdir(parents=True, exist_ok=True)
    cuts = CutSet.from_jsonl_lazy(cuts_path)
    if sampling_rate and audio_format != "reference":
        cuts = cuts.map(partial(training_audio, sampling_rate=sampling_rate))
    return cuts.to_shar(shar_dir, fields=fields, shard_size=shard_size, warn_unused_fields=False)


def export_shar_sources(
    manifests: dict[str, Path],
    ranks: dict[str, np.ndarray],
    weights: dict[str, float],
    shar_dir: Path,
    sizes: dict[str, int],
    audio_format: str = "flac",
    shard_size: int = 1000,
    sampling_rate: int | None = None,
) -> dict[str, Path]:
    """One Shar directory per source (``shar_dir/<source>/``, cuts with their subset rank) and
    the training-source files that mix them by weight (:mod:`toolkit.data.sources`).

    Writes ``shar_dir/train_sources.yaml`` (``data: {train: [{path, weight}, ...]}``) and one
    ``train_sources_<tag>.yaml`` per subset (the same sources with ``subset: <tag>``). The weight
    of a source is its per-draw probability ``num_cuts × weight`` (``mux_weights.json``): the
    same hours shares as the repetition in ``cuts_train_weighted.jsonl.gz``, without copies.

    Returns:
        ``{"shar_<source>": dir, "train_sources": yaml, "train_sources_<tag>": yaml, ...}``.
    """
    import yaml

    if audio_format not in SHAR_FORMATS:
        raise ValueError(f"unknown Shar audio format {audio_format!r}; known: {SHAR_FORMATS}")
    fields = {} if audio_format == "reference" else {"recording": audio_format}
    out: dict[str, Path] = {}
    entries = []
    for source, path in manifests.items():
        w = weights.get(source, 1.0) * len(ranks[source])
        if w <= 0:
            continue
        d = shar_dir / source
        d.mkdir(parents=True, exist_ok=True)
        lines = (
            with_subset_rank(line, int(r))
            for line, r in zip(read_lines(path), ranks[source], strict=True)
        )
        cuts = CutSet(_DictCuts(lines))
        if sampling_rate and audio_format != "reference":
            cuts = cuts.map(partial(training_audio, sampling_rate=sampling_rate))
        cuts.to_shar(d, fields=fields, shard_size=shard_size, warn_unused_fields=False)
        write_subset_sizes(sizes, d)
        out[f"shar_{source}"] = d
        entries.append({"path": str(d.resolve()), "weight": float(w)})
    for tag in [None, *sizes]:
        name = "train_sources" + (f"_{tag}" if tag else "")
        train = [dict(e, subset=tag) if tag else e for e in entries]
        f = shar_dir / f"{name}.yaml"
        tmp = shar_dir / f".{name}.yaml.tmp"
        tmp.write_text(yaml.safe_dump({"data": {"train": train}}, sort_keys=False))
        os.replace(tmp, f)
        out[name] = f
    return out


class _DictCuts:
    """Cuts deserialised from JSON lines (one pass)."""

    def __init__(self, lines: Iterable[str]) -> None:
        self.lines = lines

    def __iter__(self) -> Iterator[Any]:
        from lhotse.serialization import deserialize_item

        for line in self.lines:
            yield deserialize_item(json.loads(line))


def concat_manifests(paths: Sequence[Path], out: Path) -> int:
    """Copy the cut lines of ``paths`` into ``out`` in order; returns the number of cuts."""
    n = 0
    with atomic_line_writer(out) as f:
        for p in paths:
            for line in read_lines(p):
                f.write(line)
                n += 1
    return n


def with_subset_rank(line: str, rank: int) -> str:
    """A cut JSON line with ``custom["subset_rank"] = rank``: a training source selects a nested
    subset from it without a file per subset (``data.train: {path: ..., subset: 0.1}``,
    :mod:`toolkit.data.sources`)."""
    d = json.loads(line)
    d["custom"] = {**(d.get("custom") or {}), RANK_KEY: rank}
    return json.dumps(d, ensure_ascii=False) + "\n"


def write_subset_sizes(sizes: dict[str, int], *dirs: Path) -> None:
    """``cuts.subsets.json`` (``{tag: clips}``) into each of ``dirs``: the subset table a
    training source's ``subset: <tag>`` is resolved with. (In a Shar directory the name must
    start with ``cuts.`` and not end in ``.jsonl``: Lhotse's reader takes every other file as a
    field of the shards.)"""
    text = json.dumps(sizes, indent=1)
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / f".{SUBSETS_FILE}.tmp"
        tmp.write_text(text)
        os.replace(tmp, d / SUBSETS_FILE)


def write_mixed(
    manifests: Sequence[Path],
    ranks: Sequence[np.ndarray],
    out: Path,
    subset_paths: dict[str, Path],
    sizes: dict[str, int],
    seed: int,
) -> None:
    """Interleave per-source manifests into ``out`` and the nested subsets, in one pass.

    Every line of ``out`` carries its rank (:func:`with_subset_rank`).

    Args:
        manifests, ranks: per source, its manifest and the global ranks of its cuts
            (:func:`subset_ranks`).
        subset_paths, sizes: per subset tag, the output file and its number of clips; a subset
            holding every clip becomes a symbolic link to ``out`` instead of a copy.
    """
    total = sum(len(r) for r in ranks)
    partial = {t: n for t, n in sizes.items() if n < total}
    streams = [zip(read_lines(p), r, strict=True) for p, r in zip(manifests, ranks, strict=True)]
    with contextlib.ExitStack() as stack:
        f_all = stack.enter_context(atomic_line_writer(out))
        opened = {t: stack.enter_context(atomic_line_writer(subset_paths[t])) for t in partial}
        for _, (line, rank) in interleave(streams, [len(r) for r in ranks], seed):
            line = with_subset_rank(line, int(rank))
            f_all.write(line)
            for t, n in partial.items():
                if rank < n:
                    opened[t].write(line)
    for tag in set(sizes) - set(partial):
        link = subset_paths[tag]
        link.unlink(missing_ok=True)
        os.symlink(out.name, link)
