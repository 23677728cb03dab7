"""The shared fit recipe of evaluation heads (toolkit.evaluate.heads.fit)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from toolkit.evaluate.heads.fit import SeededOrder, adamw_warmup_cosine, optimizer_step
from toolkit.layers import resolve_device


def test_seeded_order_covers_each_epoch_and_repeats():
    order = SeededOrder(5, torch.Generator().manual_seed(3))
    first = order.take(5)
    assert sorted(first) == [0, 1, 2, 3, 4]
    batch = order.take(7)  # crosses an epoch boundary
    assert sorted(batch[:5]) == [0, 1, 2, 3, 4] and len(batch) == 7
    again = SeededOrder(5, torch.Generator().manual_seed(3))
    assert again.take(12) == first + batch


def test_schedule_and_step():
    lin = nn.Linear(3, 1)
    opt, sched = adamw_warmup_cosine([{"params": list(lin.parameters())}], 1e-2, 2, 10)
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        loss = lin(torch.ones(4, 3)).pow(2).mean() * 1e3
        optimizer_step(loss, opt, sched, lin.parameters(), grad_clip=0.5)
    assert lrs[0] == pytest.approx(5e-3) and lrs[1] == lrs[2] == pytest.approx(1e-2)
    assert lrs[-1] < lrs[2] and lrs[-1] > 1e-4  # cosine towards 1 % of the peak
    assert opt.param_groups[0]["betas"] == (0.9, 0.98)
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda")
