"""Checks shared by the objective tests."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def adam_on_one_batch(
    obj: nn.Module, hidden: Tensor, lens: Tensor, batch: dict, steps: int, lr: float,
    key: str = "loss",
) -> tuple[float, dict[str, Tensor]]:  # fmt: skip
    """``steps`` Adam steps of ``obj`` on one fixed batch: ``out[key]`` of the first step (a
    float) and the loss dict ``out`` of the last step (computed before its update)."""
    opt = torch.optim.Adam(obj.parameters(), lr=lr)
    first = None
    for _ in range(steps):
        out = obj(hidden, lens, batch)
        first = float(out[key].detach()) if first is None else first
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    return first, out
