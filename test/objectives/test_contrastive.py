"""Contrastive objective: loss equals a hand computation; temperature is clamped."""

from __future__ import annotations

import math

import torch

from toolkit.objectives.contrastive import Contrastive, symmetric_info_nce


def hand_info_nce(a: torch.Tensor, t: torch.Tensor, scale: float) -> float:
    n = len(a)
    total = 0.0
    for i in range(n):
        sims_a = [scale * float(a[i] @ t[j]) for j in range(n)]
        sims_t = [scale * float(t[i] @ a[j]) for j in range(n)]
        total += -sims_a[i] + math.log(sum(math.exp(s) for s in sims_a))
        total += -sims_t[i] + math.log(sum(math.exp(s) for s in sims_t))
    return total / (2 * n)


def test_info_nce_matches_hand_computation():
    torch.manual_seed(0)
    a = torch.nn.functional.normalize(torch.randn(5, 8), dim=-1)
    t = torch.nn.functional.normalize(torch.randn(5, 8), dim=-1)
    got = symmetric_info_nce(a, t, torch.tensor(10.0))
    assert abs(float(got) - hand_info_nce(a, t, 10.0)) < 1e-5


def test_objective_forward_and_temperature_clamp():
    torch.manual_seed(0)
    obj = Contrastive(
        encoder_dim=16,
        vocab_size=20,
        text_encoder={
            "name": "transformer",
            "dim": 16,
            "num_layers": 1,
            "num_heads": 2,
            "ff_dim": 32,
        },
        embed_dim=8,
        init_temperature=0.001,
        max_logit_scale=50.0,
    )
    hidden, lens = torch.randn(4, 6, 16), torch.tensor([6, 5, 3, 1])
    batch = {"text_tokens": torch.randint(4, 20, (4, 7)), "text_lens": torch.tensor([7, 4, 5, 2])}
    out = obj(hidden, lens, batch)
    assert out["loss"].ndim == 0 and torch.isfinite(out["loss"])
    assert abs(float(out["temperature"]) - 1 / 50.0) < 1e-6  # clamped at max_logit_scale
    out["loss"].backward()
    a = obj.embed_audio(hidden, lens)
    assert torch.allclose(a.norm(dim=-1), torch.ones(4), atol=1e-5)
