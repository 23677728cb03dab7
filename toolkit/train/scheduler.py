"""Learning-rate scheduler plugins: ``build(cfg, optimizer=..., total_steps=...)``."""

from __future__ import annotations

import math

import torch

from toolkit.registry import SCHEDULERS


def warmup_cosine_factor(
    step: int, warmup_steps: int, total_steps: int, min_lr_ratio: float
) -> float:
    """LR multiplier: linear 0→1 over ``warmup_steps``, then cosine 1→``min_lr_ratio``."""
    if step < warmup_steps:
        return (step + 1) / max(1, warmup_steps)
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


@SCHEDULERS.register("warmup_cosine")
def warmup_cosine(
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    warmup_steps: int = 500,
    min_lr_ratio: float = 0.01,
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up then cosine decay to ``min_lr_ratio × lr`` at ``total_steps``."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: warmup_cosine_factor(s, warmup_steps, total_steps, min_lr_ratio)
    )


@SCHEDULERS.register("constant")
def constant(
    optimizer: torch.optim.Optimizer, warmup_steps: int = 0
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up then a constant learning rate."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / max(1, warmup_steps))
    )


def eden_factor(
    step: int,
    lr_batches: float,
    lr_epochs: float,
    steps_per_epoch: int | None,
    warmup_steps: int,
    warmup_start: float = 0.5,
) -> float:
    """Eden LR multiplier (Zipformer paper): ``((s² + B²)/B²)^-¼ · ((e² + E²)/E²)^-¼ · w`` with
    ``s`` = optimiser steps, ``e = s / steps_per_epoch`` (no epoch term when None) and warm-up
    ``w`` rising linearly from ``warmup_start`` to 1 over ``warmup_steps``."""
    factor = ((step**2 + lr_batches**2) / lr_batches**2) ** -0.25
    if steps_per_epoch:
        epoch = step / steps_per_epoch
        factor *= ((epoch**2 + lr_epochs**2) / lr_epochs**2) ** -0.25
    if step < warmup_steps:
        factor *= warmup_start + (1.0 - warmup_start) * step / warmup_steps
    return factor


@SCHEDULERS.register("eden")
def eden(
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    lr_batches: float = 7500,
    lr_epochs: float = 3.5,
    steps_per_epoch: int | None = None,
    warmup_steps: int = 500,
    warmup_start: float = 0.5,
) -> torch.optim.lr_scheduler.LambdaLR:
    """Eden schedule (use with ``scaled_adam``): decays like ``step^-½`` after ``lr_batches``
    steps and like ``epoch^-½`` after ``lr_epochs`` epochs. The trainer steps schedulers once per
    optimiser step and knows no epochs, so give ``steps_per_epoch`` (optimiser steps per pass
    over the data) for the epoch term; ``None`` leaves it out. ``total_steps`` is not used."""
    if steps_per_epoch is not None and steps_per_epoch <= 0:
        raise ValueError(f"scheduler.steps_per_epoch must be positive, got {steps_per_epoch}")
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: eden_factor(
            s, lr_batches, lr_epochs, steps_per_epoch, warmup_steps, warmup_start
        ),
    )
