"""Short fixed-protocol fits of small heads (evaluation probes, adapters, the tiny LM).

The evaluation's trained heads (``caption_probe`` decoders, ``retrieval_probe`` towers, ``qa``
adapters, the ``tiny`` language model) share one recipe: AdamW with decay on matrices only and
betas (0.9, 0.98), linear warm-up then cosine decay to 1 % of the peak lr, batches drawn from a
fresh seeded permutation every epoch, gradient clipping. These helpers hold that recipe once,
and :class:`FitSchedule` its knobs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch
from torch import Tensor, nn

from toolkit.train.optim import decay_groups
from toolkit.train.scheduler import warmup_cosine_factor

T = TypeVar("T")


@dataclass(frozen=True)
class FitSchedule:
    """How long and how hard a head is fitted: ``steps`` optimiser steps on batches of
    ``batch_size`` items at peak ``lr``, AdamW ``weight_decay`` on matrices, ``warmup_steps`` of
    linear warm-up, the gradients' global norm clipped at ``grad_clip`` (None: not clipped),
    batches drawn with ``seed``. The evaluators build it from their config keys of those names."""

    steps: int
    batch_size: int
    lr: float
    weight_decay: float = 0.01
    warmup_steps: int = 100
    grad_clip: float | None = 1.0
    seed: int = 0


def adamw_warmup_cosine(
    groups: list[dict], lr: float, warmup_steps: int, steps: int, final_ratio: float = 0.01
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW (betas 0.9/0.98) over parameter ``groups`` and its per-step schedule: linear
    warm-up over ``warmup_steps``, then cosine decay to ``final_ratio`` × lr at ``steps``."""
    opt = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.98))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: warmup_cosine_factor(s, warmup_steps, steps, final_ratio)
    )
    return opt, sched


class SeededOrder:
    """Indices ``0..n-1`` drawn from a fresh seeded permutation every epoch (``generator`` may be
    shared with other draws, which then interleave deterministically)."""

    def __init__(self, n: int, generator: torch.Generator) -> None:
        self.n = n
        self.generator = generator
        self.order: list[int] = []

    def take(self, k: int) -> list[int]:
        """The next ``k`` indices (an epoch boundary may fall inside the batch)."""
        out = []
        while len(out) < k:
            if not self.order:
                self.order = torch.randperm(self.n, generator=self.generator).tolist()
            out.append(self.order.pop())
        return out


def optimizer_step(
    loss: Tensor,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    params: Iterable[nn.Parameter],
    grad_clip: float | None,
) -> None:
    """zero grads → backward → clip the global norm of ``params`` (None: no clipping) → step."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip is not None:
        nn.utils.clip_grad_norm_(params, grad_clip)
    opt.step()
    sched.step()


def fit_on_batches(
    module: nn.Module,
    items: Sequence[T],
    batch_loss: Callable[[list[T]], Tensor],
    fit: FitSchedule,
) -> list[float]:
    """The whole recipe over ``module`` (already on its device and in train mode):
    ``fit.steps`` steps of :func:`adamw_warmup_cosine` over its :func:`decay_groups`, each on
    ``batch_loss(batch)`` of ``min(fit.batch_size, len(items))`` items drawn by a
    :class:`SeededOrder` seeded with ``fit.seed``, then :func:`optimizer_step`. Returns the loss
    of every step."""
    groups = decay_groups(module, fit.weight_decay)
    opt, sched = adamw_warmup_cosine(groups, fit.lr, fit.warmup_steps, fit.steps)
    order = SeededOrder(len(items), torch.Generator().manual_seed(fit.seed))
    losses = []
    for _ in range(fit.steps):
        loss = batch_loss([items[i] for i in order.take(min(fit.batch_size, len(items)))])
        optimizer_step(loss, opt, sched, module.parameters(), fit.grad_clip)
        losses.append(float(loss.detach()))
    return losses
