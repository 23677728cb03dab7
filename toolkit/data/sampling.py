"""Samplers and data loaders: duration-bucketed, DDP-aware, resumable mid-epoch."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from lhotse import CutSet
from lhotse.dataset import DynamicBucketingSampler, SimpleCutSampler


class ResumableSampler:
    """Wraps a Lhotse sampler: :meth:`set_epoch` and ``skip`` the first ``n`` mini-batches of the
    next epoch (the trainer resumes mid-epoch this way: skipping only reads cut metadata).

    Lhotse samplers are deterministic given ``(seed, epoch)``, so the skipped batches are exactly
    those consumed before the interruption.
    """

    def __init__(self, sampler: Any) -> None:
        self.sampler = sampler
        self.to_skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.sampler.set_epoch(epoch)
        self.to_skip = skip

    def __iter__(self) -> Iterator[CutSet]:
        it = iter(self.sampler)  # Lhotse samplers reset on iter(): never call it twice
        for _ in range(self.to_skip):
            if next(it, None) is None:
                return
        self.to_skip = 0
        while (batch := next(it, None)) is not None:
            yield batch

    def __len__(self) -> int:  # unknown for lazily bucketed cuts; the trainer does not need it
        raise TypeError("length unknown")


def rescale_position(batches_per_rank: int, old_world_size: int, new_world_size: int) -> int:
    """Batches each rank skips to resume an epoch under a different world size: the same number
    of global batches as ``batches_per_rank`` batches on ``old_world_size`` ranks consumed.

    Lhotse's samplers hand global batch ``i`` to rank ``i mod world_size``. For
    ``bucketing=False`` the global sequence does not depend on the world size, so the resumed
    epoch continues exactly where it stopped (rounding down when the count is not a multiple of
    ``new_world_size``: up to ``new_world_size - 1`` batches are seen again, none are lost). With
    duration bucketing the bucket choice is synchronised across ranks (one bucket per
    ``world_size`` consecutive batches), so the sequence depends on the world size: the rest of
    that epoch covers the right amount of data but not exactly the unseen clips; the next epoch
    is exact again.
    """
    if old_world_size < 1 or new_world_size < 1 or batches_per_rank < 0:
        raise ValueError(
            f"bad position: {batches_per_rank} batches, world sizes {old_world_size} -> "
            f"{new_world_size}"
        )
    return batches_per_rank * old_world_size // new_world_size


def make_sampler(
    cuts: CutSet,
    max_duration: float,
    shuffle: bool = True,
    num_buckets: int = 10,
    seed: int = 0,
    world_size: int = 1,
    rank: int = 0,
    drop_last: bool = False,
    bucketing: bool = True,
) -> ResumableSampler:
    """Duration-based batches (``max_duration`` seconds of audio per batch and rank).

    With ``world_size > 1`` each rank receives different batches (never the same cut in an epoch).
    """
    common = dict(
        max_duration=max_duration,
        shuffle=shuffle,
        seed=seed,
        world_size=world_size,
        rank=rank,
        drop_last=drop_last,
    )
    if bucketing:
        s = DynamicBucketingSampler(cuts, num_buckets=num_buckets, **common)
    else:
        s = SimpleCutSampler(cuts, **common)
    return ResumableSampler(s)


def make_loader(
    dataset: torch.utils.data.Dataset,
    sampler: ResumableSampler,
    num_workers: int = 0,
    seed: int = 0,
) -> torch.utils.data.DataLoader:
    """DataLoader over sampler mini-batches (``batch_size=None``). A private generator keeps the
    loader from drawing on the global torch RNG (which would break exact resume)."""
    gen = torch.Generator()
    gen.manual_seed(seed)
    return torch.utils.data.DataLoader(
        dataset,
        sampler=sampler,
        batch_size=None,
        num_workers=num_workers,
        persistent_workers=False,
        generator=gen,
        pin_memory=torch.cuda.is_available(),
        prefetch_factor=4 if num_workers > 0 else None,
    )
