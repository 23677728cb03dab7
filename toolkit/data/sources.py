"""Training and evaluation sources: ``data.train`` / ``data.dev`` / ``data.test`` → cut streams.

A source value in the config is one of (docs/training.md, "Training data")::

    data.train: data/cuts_train.jsonl.gz                 # (a) a cut manifest (.jsonl / .jsonl.gz)
    data.train: data/aggregate/shar                      # (b) a Lhotse Shar directory
    data.train:                                          # (c) weighted sources, mixed per cut
      - {path: data/shar_audiocaps, weight: 0.4}
      - {path: data/shar_wavcaps, weight: 0.6, subset: "0.1"}

* ``weight``: the probability that the next cut is drawn from this source (normalised over the
  sources; Lhotse ``CutSet.mux`` semantics). An **epoch of a mix ends when its first source is
  exhausted** (Lhotse's ``mux(..., stop_early=True)``): the mix keeps its proportions to the
  last batch, and what the other sources did not give is reshuffled into the next epoch. A
  single source is read exactly once per epoch.
* ``subset``: a nested data-scaling subset of an aggregated corpus without rewriting audio: the
  aggregation stores each training cut's stratified rank (``custom["subset_rank"]``) and the
  sizes of its subsets (``cuts.subsets.json`` in the Shar and aggregate directories); a
  subset tag (``"0.1"``, ``"n5000"``) or a clip count keeps the cuts of rank below its size,
  exactly the cuts of ``cuts_train_<tag>.jsonl.gz``.

**Partition** (:func:`slot_units`). Reading happens in *slots*: one per (rank, dataloader
worker), ``S = world_size × max(1, num_workers)``. Every source is cut into *units*: its Shar
shards, each split into ``ceil(S / shards)`` stripes when a source has fewer shards than slots
(a manifest is one shard). Per epoch the units of each source are shuffled from
``(seed, epoch, source)`` and slot ``s`` reads units ``s, s + S, ...``: the slots read disjoint
cuts whose union is the whole source, and with at least ``S`` shards they read disjoint files.
"""

from __future__ import annotations

import json
import logging
import math
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lhotse import CutSet
from lhotse.cut import Cut

from toolkit.config import ConfigError, locate
from toolkit.data.shar import Shard, SharError, list_shards, read_shard

log = logging.getLogger(__name__)

SUBSETS_FILE = "cuts.subsets.json"  # written by toolkit.data.aggregate.mix.write_subset_sizes
RANK_KEY = "subset_rank"


@dataclass(frozen=True)
class Source:
    """One resolved source: its shards, weight and the subset size (None: every cut)."""

    path: Path
    shards: tuple[Shard, ...]
    weight: float = 1.0
    max_rank: int | None = None

    @property
    def is_shar(self) -> bool:
        return self.shards[0].cuts != self.path


def _fail(key: str, msg: str) -> ConfigError:
    return ConfigError(f"{locate(key)}{key}: {msg}")


def _subset_size(path: Path, subset: Any, key: str) -> int | None:
    """The clip count of ``subset`` (a tag from ``subsets.json``, or a clip count)."""
    if subset is None:
        return None
    if isinstance(subset, int) and not isinstance(subset, bool):
        if subset < 1:
            raise _fail(key, f"subset must be a clip count >= 1 or a tag, got {subset}")
        return subset
    table_path = (path if path.is_dir() else path.parent) / SUBSETS_FILE
    if not table_path.is_file():
        raise _fail(
            key,
            f"subset {subset!r} needs {table_path} (written by the aggregation stage with the "
            "nested subsets); give a clip count instead, or re-run the aggregation",
        )
    table = json.loads(table_path.read_text())
    tag = str(subset)
    if tag not in table:
        raise _fail(key, f"unknown subset {tag!r} in {table_path}; known: {', '.join(table)}")
    return int(table[tag])


def _one_source(item: Any, key: str) -> Source:
    spec = {"path": item} if isinstance(item, str) else item
    if not isinstance(spec, dict):
        raise _fail(key, f"expected a path or {{path: ..., weight: ...}}, got {item!r}")
    unknown = set(spec) - {"path", "weight", "subset"}
    if unknown:
        raise _fail(f"{key}.{sorted(unknown)[0]}", "unknown key; known: path, weight, subset")
    if not isinstance(spec.get("path"), str) or not spec["path"]:
        raise _fail(f"{key}.path", f"a source needs a path, got {spec.get('path')!r}")
    path = Path(spec["path"])
    weight = spec.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)):
        raise _fail(f"{key}.weight", f"expected a number > 0, got {weight!r}")
    if not (weight > 0 and math.isfinite(weight)):
        raise _fail(f"{key}.weight", f"must be a finite number > 0, got {weight}")
    if not path.exists():
        raise _fail(f"{key}.path", f"{path} does not exist (run the data preparation stage)")
    if path.is_dir():
        try:
            shards = tuple(list_shards(path))
        except SharError as e:
            raise _fail(f"{key}.path", str(e)) from e
    elif path.name.endswith((".jsonl", ".jsonl.gz")):
        shards = (Shard(path, None),)
    else:
        raise _fail(
            f"{key}.path",
            f"{path}: expected a cut manifest (.jsonl/.jsonl.gz) or a Shar directory",
        )
    return Source(path, shards, float(weight), _subset_size(path, spec.get("subset"), key))


def parse_sources(value: Any, key: str = "data.train") -> list[Source]:
    """Resolve a ``data.<split>`` value (see the module docstring) into sources.

    Raises:
        ConfigError: naming the key (and the config file and line) for a missing path, a bad
            weight or subset, a Shar directory with lost shards, or Shar sources stored at
            different sampling rates.
    """
    if value is None or value == [] or value == "":
        raise _fail(key, "no data given")
    items = value if isinstance(value, list) else [value]
    sources = [
        _one_source(item, f"{key}[{i}]" if isinstance(value, list) else key)
        for i, item in enumerate(items)
    ]
    _check_rates(sources, key)
    return sources


def _first_cut(src: Source) -> Cut | None:
    return next(iter(read_shard(src.shards[0])), None)


def _check_rates(sources: Sequence[Source], key: str) -> None:
    """Shar sources store their audio at one rate each (``--shar-sampling-rate``); a mix of
    different rates is an export mistake that would make the loader resample one of them."""
    rates = {}
    for s in sources:
        if s.is_shar and s.shards[0].recording is not None:
            cut = _first_cut(s)
            if cut is not None and cut.has_recording:
                rates[s.path] = cut.sampling_rate
    if len(set(rates.values())) > 1:
        listed = ", ".join(f"{p} ({r} Hz)" for p, r in rates.items())
        raise _fail(
            key,
            f"the Shar sources disagree on sampling rate: {listed}; export them at one rate "
            "(toolkit.bin.aggregate --shar-sampling-rate 16000)",
        )


@dataclass(frozen=True)
class Unit:
    """A part of a source read by one slot: a shard, or stripe ``stripe`` of ``stripes``."""

    shard: Shard
    stripe: int = 0
    stripes: int = 1


def source_units(src: Source, num_slots: int) -> list[Unit]:
    """The units of ``src`` (module docstring): its shards, striped when fewer than slots."""
    stripes = max(1, math.ceil(num_slots / len(src.shards)))
    return [Unit(sh, k, stripes) for sh in src.shards for k in range(stripes)]


def slot_units(src_index: int, src: Source, epoch: int, slot: int, num_slots: int, seed: int):
    """The units slot ``slot`` of ``num_slots`` reads from source ``src_index`` in ``epoch``."""
    units = source_units(src, num_slots)
    random.Random(f"{seed}:{epoch}:{src_index}:units").shuffle(units)
    return units[slot::num_slots]


def read_units(
    units: Sequence[Unit], max_rank: int | None = None, keep: Callable[[Cut], bool] | None = None
) -> Iterator[Cut]:
    """The cuts of ``units`` in order: a stripe keeps positions ``stripe mod stripes``; a subset
    keeps cuts of ``custom["subset_rank"] < max_rank``; ``keep`` filters the cuts."""
    for u in units:

        def take(pos: int, d: dict, u: Unit = u) -> bool:
            if pos % u.stripes != u.stripe:
                return False
            if max_rank is None:
                return True
            rank = (d.get("custom") or {}).get(RANK_KEY)
            if rank is None:
                raise ConfigError(
                    f"{u.shard.cuts}: cut {d.get('id')} has no custom.{RANK_KEY}: a subset needs "
                    "a corpus written by the aggregation stage (toolkit.bin.aggregate)"
                )
            return rank < max_rank

        for cut in read_shard(u.shard, take):
            if keep is None or keep(cut):
                yield cut


_END = object()


def mux(streams: Sequence[Iterator[Cut]], weights: Sequence[float], rng: random.Random):
    """Draw each next cut from stream ``i`` with probability ``weights[i] / sum(weights)``; stop
    when the first stream is exhausted (``CutSet.mux(..., stop_early=True)``)."""
    if len(streams) == 1:
        yield from streams[0]
        return
    idx = list(range(len(streams)))
    while True:
        i = rng.choices(idx, weights=weights)[0]
        cut = next(streams[i], _END)
        if cut is _END:
            return
        yield cut


class SlotCuts:
    """The cuts one slot reads in one epoch: its units of every source, mixed by weight.

    Re-iterable (a sampler may read it twice: once to estimate its duration buckets); every
    iteration gives the same sequence. A source that has no cut for this slot (an empty stripe
    or subset) leaves the slot's mix instead of ending it at once.
    """

    def __init__(
        self,
        sources: Sequence[Source],
        epoch: int,
        slot: int,
        num_slots: int,
        seed: int,
        keep: Callable[[Cut], bool] | None = None,
    ) -> None:
        self.sources, self.epoch, self.slot, self.num_slots = sources, epoch, slot, num_slots
        self.seed, self.keep = seed, keep

    def __iter__(self) -> Iterator[Cut]:
        streams, weights = [], []
        for i, src in enumerate(self.sources):
            units = slot_units(i, src, self.epoch, self.slot, self.num_slots, self.seed)
            it = read_units(units, src.max_rank, self.keep)
            first = next(it, _END)
            if first is _END:
                continue
            streams.append(_prepend(first, it))
            weights.append(src.weight)
        rng = random.Random(f"{self.seed}:{self.epoch}:{self.slot}:mux")
        yield from mux(streams, weights, rng)


def _prepend(first: Cut, rest: Iterator[Cut]) -> Iterator[Cut]:
    yield first
    yield from rest


def open_cuts(value: Any, key: str) -> CutSet:
    """All cuts of a ``data.<split>`` value as one lazy CutSet (sources in order, each cut once,
    weights ignored; subsets applied). Shar audio is attached when a batch is loaded
    (:func:`toolkit.data.shar.with_shar_audio`)."""
    sources = parse_sources(value, key)

    class _All:
        def __iter__(self) -> Iterator[Cut]:
            for src in sources:
                yield from read_units([Unit(sh) for sh in src.shards], src.max_rank)

    return CutSet(_All())


def source_paths(value: Any) -> list[str]:
    """The paths named by a ``data.<split>`` value (no checks), e.g. for messages."""
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    return [str(i["path"] if isinstance(i, dict) else i) for i in items]
