"""Optimiser plugins: ``build(cfg, params=model)`` → ``torch.optim.Optimizer``; a run's
optimiser and scheduler from its config (:func:`build_optimization`)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from toolkit.registry import OPTIMIZERS, SCHEDULERS


def build_optimization(
    cfg: dict[str, Any], model: nn.Module, total_steps: int
) -> tuple[torch.optim.Optimizer, Any]:
    """The run's ``optim`` (default ``adamw``) over ``model`` and its ``scheduler`` (default
    ``constant``) over ``total_steps`` optimiser steps, as the trainer CLI builds them."""
    optimizer = OPTIMIZERS.build(cfg.get("optim") or {"name": "adamw"}, key="optim", model=model)
    scheduler = SCHEDULERS.build(
        cfg.get("scheduler") or {"name": "constant"},
        key="scheduler",
        optimizer=optimizer,
        total_steps=total_steps,
    )
    return optimizer, scheduler


def decay_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two parameter groups: matrices/embeddings get ``weight_decay``; biases, norms and scalars
    (e.g. a temperature) get none. Frozen parameters are left out."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (decay if p.ndim >= 2 else no_decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


@OPTIMIZERS.register("adamw")
def adamw(
    model: nn.Module,
    lr: float = 1e-3,
    weight_decay: float = 0.01,
    betas: tuple[float, float] = (0.9, 0.98),
    eps: float = 1e-8,
) -> torch.optim.Optimizer:
    """AdamW with decoupled weight decay on matrices only (see :func:`decay_groups`)."""
    return torch.optim.AdamW(decay_groups(model, weight_decay), lr=lr, betas=tuple(betas), eps=eps)
