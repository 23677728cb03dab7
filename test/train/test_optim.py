"""A run's optimiser and scheduler from its config (``toolkit.train.optim.build_optimization``)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from toolkit.config import ConfigError
from toolkit.train.optim import build_optimization
from toolkit.train.scaled_adam import ScaledAdam


def test_defaults_are_adamw_at_a_constant_lr():
    model = nn.Linear(3, 2)
    opt, sched = build_optimization({}, model, total_steps=10)
    assert type(opt) is torch.optim.AdamW
    assert [g["weight_decay"] for g in opt.param_groups] == [0.01, 0.0]  # matrix / bias
    for _ in range(3):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-3)


def test_config_names_optimiser_and_schedule():
    cfg = {
        "optim": {"name": "scaled_adam", "lr": 0.04},
        "scheduler": {"name": "warmup_cosine", "warmup_steps": 2, "min_lr_ratio": 0.0},
    }
    opt, sched = build_optimization(cfg, nn.Linear(3, 2), total_steps=10)
    assert isinstance(opt, ScaledAdam)
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] < lrs[2] == pytest.approx(0.04)  # warm-up, then the peak
    assert lrs[-1] < 0.01  # cosine decay over total_steps
    with pytest.raises(ConfigError, match="optim"):
        build_optimization({"optim": {"name": "adamw", "lrr": 1.0}}, nn.Linear(3, 2), 10)
