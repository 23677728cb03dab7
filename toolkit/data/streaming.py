"""The training data stream: sources → per-slot cut streams → batches in dataloader workers →
one deterministic, resumable sequence per rank.

* :class:`SlotBatches` (an ``IterableDataset``): in each dataloader worker (or in the main
  process when ``num_workers=0``) it reads the slot's cuts (:class:`toolkit.data.sources.SlotCuts`:
  disjoint shards per rank and worker, weighted mix), batches them with a Lhotse sampler
  (duration buckets, streaming shuffle) and builds the batch dicts (audio decoded here, in the
  worker). Every batch is tagged ``stream = (worker, index)``; each worker ends with a marker.
* :class:`StreamLoader`: the rank's sequence is the round-robin over its workers (a worker that
  is done leaves the cycle), rebuilt from the tags whatever order the ``DataLoader`` delivers
  them in. Its state (``epoch``, batches taken per worker, the next worker) is what a checkpoint
  stores: on resume each worker skips its taken batches by sampling cut metadata only (no audio
  is read), so the continued sequence equals that of an uninterrupted run (same world size and
  ``num_workers``; see docs/training.md for the bound when they change).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from itertools import islice
from typing import Any

import torch
from lhotse import CutSet
from lhotse.cut import Cut
from lhotse.dataset import DynamicBucketingSampler, DynamicCutSampler

from toolkit.data.sources import SlotCuts, Source, parse_sources
from toolkit.utils.process import FollowProcess

log = logging.getLogger(__name__)

STREAM_KEY = "stream"
END_KEY = "stream_end"


class _Reiterable:
    """A CutSet's item source that re-runs ``make()`` on every iteration."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make

    def __iter__(self) -> Iterator[Cut]:
        return iter(self.make())


class SlotBatches(torch.utils.data.IterableDataset):
    """Batches of one rank's slots (one slot per dataloader worker).

    Args:
        sources: the resolved training sources.
        build_batch: ``build_batch[cuts] -> batch dict`` (a map-style dataset indexed by a
            CutSet: :class:`toolkit.data.dataset.CaptionDataset`).
        max_duration: seconds of audio per batch.
        rank, world_size: this process's place in DDP.
        num_workers: the DataLoader's workers (0: the main process reads one slot).
        seed: seed of the unit shuffle, the mix draws and the sampler's shuffle.
        bucketing: Lhotse ``DynamicBucketingSampler`` (``num_buckets`` duration buckets) or
            ``DynamicCutSampler``; both shuffle with a streaming buffer.
        min_duration: shorter cuts are dropped (logged by id at debug level).
        worker_start: how each epoch's workers start (``multiprocessing`` start method). A
            ``fork`` worker shares the trainer's whole heap copy-on-write, so every page the
            trainer writes while the worker lives is copied once. ``forkserver`` forks workers
            from a small server process instead: 5 % of the demo's CPU training time, where
            epochs are short and the heap is large. Like ``spawn``, it re-imports a ``__main__``
            script in each worker, which must keep its training call under ``if __name__ ==
            "__main__":``.
    """

    def __init__(
        self,
        sources: Sequence[Source],
        build_batch: Any,
        max_duration: float,
        rank: int = 0,
        world_size: int = 1,
        num_workers: int = 0,
        seed: int = 0,
        bucketing: bool = True,
        num_buckets: int = 10,
        drop_last: bool = False,
        min_duration: float = 0.0,
        shuffle_buffer: int = 10000,
        worker_start: str = "fork",
    ) -> None:
        self.sources = list(sources)
        self.build_batch = build_batch
        self.max_duration = max_duration
        self.rank, self.world_size, self.num_workers = rank, world_size, num_workers
        self.seed, self.bucketing, self.num_buckets = seed, bucketing, num_buckets
        self.drop_last, self.min_duration = drop_last, min_duration
        self.shuffle_buffer = shuffle_buffer
        self.worker_start = worker_start
        self.epoch = 0
        self.skip: list[int] = [0] * max(1, num_workers)

    @property
    def num_slots(self) -> int:
        return self.world_size * max(1, self.num_workers)

    def slot_of(self, worker: int) -> int:
        return self.rank * max(1, self.num_workers) + worker

    def _keep(self, cut: Cut) -> bool:
        if cut.duration >= self.min_duration:
            return True
        log.debug("dropping cut %s: %.3fs < data.min_clip_duration", cut.id, cut.duration)
        return False

    def sampler(self, worker: int) -> Any:
        """The Lhotse sampler of ``worker``'s slot for the current epoch."""
        slot = self.slot_of(worker)
        cuts = CutSet(
            _Reiterable(
                lambda: SlotCuts(
                    self.sources, self.epoch, slot, self.num_slots, self.seed, self._keep
                )
            )
        )
        common = dict(
            max_duration=self.max_duration,
            shuffle=True,
            seed=self.seed * 1000003 + slot,
            world_size=1,
            rank=0,
            drop_last=self.drop_last,
        )
        # a slot with fewer cuts than buckets (a tiny corpus over many slots) cannot be bucketed
        if self.bucketing and sum(1 for _ in islice(cuts, self.num_buckets)) >= self.num_buckets:
            s = DynamicBucketingSampler(
                cuts,
                num_buckets=self.num_buckets,
                buffer_size=self.shuffle_buffer,  # Lhotse 1.33: also the shuffle buffer
                **common,
            )
        else:
            s = DynamicCutSampler(cuts, shuffle_buffer_size=self.shuffle_buffer, **common)
        s.set_epoch(self.epoch)
        return s

    def cut_batches(self, worker: int) -> Iterator[CutSet]:
        """The cut batches of ``worker``'s slot, after skipping ``self.skip[worker]``."""
        it = iter(self.sampler(worker))  # Lhotse samplers reset on iter(): call it once
        for _ in range(self.skip[worker]):
            if next(it, None) is None:
                return
        while (batch := next(it, None)) is not None:
            yield batch

    def batch_at(self, epoch: int, worker: int, index: int) -> dict[str, Any] | None:
        """Batch ``index`` of ``worker``'s slot in ``epoch``, rebuilt in this process (the same
        batch the worker gave: everything is seeded from the epoch, slot and cut ids)."""
        saved = self.epoch, list(self.skip)
        self.epoch, self.skip = epoch, [0] * len(self.skip)
        self.skip[worker] = index
        try:
            cuts = next(self.cut_batches(worker), None)
            if cuts is None:
                return None
            if hasattr(self.build_batch, "set_epoch"):
                self.build_batch.set_epoch(epoch)
            return self.build_batch[cuts]
        finally:
            self.epoch, self.skip = saved

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = torch.utils.data.get_worker_info()
        worker = info.id if info is not None else 0
        k = self.skip[worker]
        if hasattr(self.build_batch, "set_epoch"):
            self.build_batch.set_epoch(self.epoch)
        for cuts in self.cut_batches(worker):
            batch = self.build_batch[cuts]
            batch[STREAM_KEY] = (worker, k)
            k += 1
            yield batch
        yield {STREAM_KEY: (worker, k), END_KEY: True}


class StreamLoader:
    """A rank's training batches in a deterministic order, with a resumable position.

    Works as the trainer's loader and sampler: ``set_epoch(epoch, skip)``, iteration, and
    ``state_dict()`` / ``load_state_dict()`` for the position inside the epoch.
    """

    def __init__(self, dataset: SlotBatches, prefetch_factor: int = 4) -> None:
        self.dataset = dataset
        self.workers = max(1, dataset.num_workers)
        self.prefetch_factor = prefetch_factor
        self._fresh(0)
        self._loaded: dict[str, Any] | None = None
        self.last: tuple[int, int, int] | None = None  # (epoch, worker, index) last yielded

    def _fresh(self, epoch: int) -> None:
        self.epoch = epoch
        self.taken = [0] * self.workers
        self.ended = [False] * self.workers
        self.next_worker = 0

    # -------------------------------------------------------------- position
    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "taken": list(self.taken),
            "ended": list(self.ended),
            "next_worker": self.next_worker,
            "last": list(self.last) if self.last else None,
            "num_workers": self.dataset.num_workers,
            "world_size": self.dataset.world_size,
        }

    def load_state_dict(self, state: dict[str, Any]) -> bool:
        """Restore a position; False (nothing changed) when it was saved with another world size
        or number of workers — the slots then read other shards and cannot continue it."""
        d = self.dataset
        if state.get("num_workers") != d.num_workers or state.get("world_size") != d.world_size:
            return False
        self._loaded = dict(state)
        self.last = tuple(state["last"]) if state.get("last") else None
        return True

    def last_batch(self) -> dict[str, Any] | None:
        """The last batch this loader yielded (rebuilt after a resume), for DDP padding."""
        if self.last is None:
            return None
        return self.dataset.batch_at(*self.last)

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """Start ``epoch``; with ``skip > 0`` continue the position restored by
        :meth:`load_state_dict` (its batch count must equal ``skip``)."""
        loaded, self._loaded = self._loaded, None
        self._fresh(epoch)
        if skip == 0:
            return
        if loaded is None or loaded["epoch"] != epoch or sum(loaded["taken"]) != skip:
            raise RuntimeError(
                f"cannot resume epoch {epoch} at batch {skip}: no matching stream position "
                "(the checkpoint was written with another world size or data.num_workers)"
            )
        self.taken = list(loaded["taken"])
        self.ended = list(loaded["ended"])
        self.next_worker = int(loaded["next_worker"])

    def __len__(self) -> int:
        raise TypeError("length unknown (streamed)")

    # -------------------------------------------------------------- iteration
    def _loader(self) -> torch.utils.data.DataLoader:
        d = self.dataset
        workers = d.num_workers > 0
        if workers and d.worker_start == "forkserver":
            # the server imports these once, so each epoch's workers start without imports
            # (no effect once the server runs; "__main__" is multiprocessing's own default)
            multiprocessing.set_forkserver_preload(["__main__", "toolkit.data.dataset", __name__])
        d.epoch = self.epoch
        d.skip = list(self.taken)
        gen = torch.Generator()  # the workers' base seed; never drawn from the global RNG
        gen.manual_seed(d.seed * 1000003 + self.epoch)
        follow = workers and d.worker_start != "fork"
        return torch.utils.data.DataLoader(
            d,
            generator=gen,
            batch_size=None,
            num_workers=d.num_workers,
            persistent_workers=False,
            multiprocessing_context=d.worker_start if workers else None,
            # torch ends a worker whose parent dies; a forkserver worker's parent is the server
            worker_init_fn=FollowProcess(os.getpid()) if follow else None,
            pin_memory=torch.cuda.is_available(),
            prefetch_factor=self.prefetch_factor if workers else None,
        )

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if all(self.ended):
            return
        src = iter(self._loader())
        got: dict[tuple[int, int], dict[str, Any]] = {}  # delivered, not yet due
        while not all(self.ended):
            w = self.next_worker
            key = (w, self.taken[w])
            while key not in got:
                batch = next(src, None)
                if batch is None:
                    raise RuntimeError(f"data worker {w} stopped without its end marker")
                got[tuple(batch[STREAM_KEY])] = batch
            batch = got.pop(key)
            if batch.get(END_KEY):
                self.ended[w] = True
            else:
                self.last = (self.epoch, w, self.taken[w])
                self.taken[w] += 1
            self.next_worker = self._after(w)
            if not batch.get(END_KEY):
                batch.pop(STREAM_KEY, None)
                yield batch

    def _after(self, w: int) -> int:
        for k in range(1, self.workers + 1):
            nxt = (w + k) % self.workers
            if not self.ended[nxt]:
                return nxt
        return w


def train_loader(
    value: Any, dataset: Any, max_duration: float, *, key: str = "data.train", **options: Any
) -> StreamLoader:
    """The resumable training loader of a ``data.train`` value (a manifest, a Shar directory or
    weighted sources: :mod:`toolkit.data.sources`), batches built by ``dataset[cuts]``;
    ``options`` are those of :class:`SlotBatches` (rank, world_size, num_workers, seed, ...)."""
    sources = parse_sources(value, key)
    log.info(
        "%s: %s",
        key,
        "; ".join(
            f"{s.path} ({'Shar, ' if s.is_shar else ''}{len(s.shards)} shard(s), weight {s.weight:g}"
            f"{'' if s.max_rank is None else f', first {s.max_rank} clips'})"
            for s in sources
        ),
    )
    return StreamLoader(SlotBatches(sources, dataset, max_duration, **options))
