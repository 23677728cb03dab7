"""SigLIP objective: loss equals a hand computation, init values, gradients, a tiny overfit, and
2-process DDP (gloo) equal to one process on the same global batch (unequal per-rank sizes)."""

from __future__ import annotations

import math

import pytest
import torch
from ddp_check import ddp_step_and_save, single_process_step, spawn_and_compare
from objective_checks import adam_on_one_batch
from torch import nn

from toolkit.objectives.siglip import SigLIP, sigmoid_pair_loss
from toolkit.registry import OBJECTIVES

TEXT = {"name": "transformer", "dim": 16, "num_layers": 1, "num_heads": 2, "ff_dim": 32}
SIZES = [3, 5]  # unequal per-rank batch sizes


def hand_sigmoid_loss(a: torch.Tensor, t: torch.Tensor, scale: float, bias: float) -> float:
    n = len(a)
    total = 0.0
    for i in range(n):
        for j in range(n):
            z = 1.0 if i == j else -1.0
            logit = scale * float(a[i] @ t[j]) + bias
            total += math.log(1.0 + math.exp(-z * logit))
    return total / n


def test_sigmoid_loss_matches_hand_computation():
    torch.manual_seed(0)
    a = torch.nn.functional.normalize(torch.randn(5, 8), dim=-1)
    t = torch.nn.functional.normalize(torch.randn(5, 8), dim=-1)
    got = sigmoid_pair_loss(a, t, torch.tensor(7.0), torch.tensor(-3.0))
    assert abs(float(got) - hand_sigmoid_loss(a, t, 7.0, -3.0)) < 1e-5


def test_registry_init_and_forward():
    torch.manual_seed(0)
    obj = OBJECTIVES.build(
        {"name": "siglip", "embed_dim": 8, "text_encoder": TEXT},
        key="objective",
        encoder_dim=16,
        vocab_size=20,
    )
    assert isinstance(obj, SigLIP)
    assert abs(float(obj.logit_scale.detach()) - math.log(10.0)) < 1e-7
    assert float(obj.bias.detach()) == -10.0
    hidden, lens = torch.randn(4, 6, 16), torch.tensor([6, 5, 3, 1])
    batch = {"text_tokens": torch.randint(4, 20, (4, 7)), "text_lens": torch.tensor([7, 4, 5, 2])}
    out = obj(hidden, lens, batch)
    assert out["loss"].ndim == 0 and torch.isfinite(out["loss"])
    assert abs(float(out["temperature"]) - 0.1) < 1e-6
    out["loss"].backward()
    assert obj.bias.grad is not None and obj.bias.grad != 0
    assert obj.logit_scale.grad is not None and obj.logit_scale.grad != 0
    assert obj.text_encoder.embed.weight.grad.abs().sum() > 0
    emb = obj.embed_audio(hidden, lens)
    assert emb.shape == (4, 8) and torch.allclose(emb.norm(dim=-1), torch.ones(4), atol=1e-5)
    assert obj.embed_text(batch["text_tokens"], batch["text_lens"]).shape == (4, 8)


def test_tiny_overfit_loss_decreases():
    torch.manual_seed(0)
    obj = SigLIP(16, 20, dict(TEXT, dropout=0.0), embed_dim=8)
    hidden, lens = torch.randn(6, 5, 16), torch.full((6,), 5)
    batch = {"text_tokens": torch.randint(4, 20, (6, 6)), "text_lens": torch.full((6,), 6)}
    first, last = adam_on_one_batch(obj, hidden, lens, batch, steps=60, lr=1e-2)
    assert float(last["loss"].detach()) < 0.5 * first


class _Wrapper(nn.Module):
    """A linear 'encoder' over given frames + the SigLIP objective (DDP needs one module)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.encoder = nn.Linear(10, 16)
        self.objective = SigLIP(16, 30, dict(TEXT, dropout=0.0), embed_dim=8, init_bias=-2.0)

    def forward(self, batch: dict) -> dict:
        return self.objective(self.encoder(batch["frames"]), batch["lens"], batch)


def global_batch() -> dict:
    g = torch.Generator().manual_seed(1)
    n = sum(SIZES)
    lens = torch.randint(2, 7, (n,), generator=g)
    frames = torch.randn(n, 6, 10, generator=g)
    tlens = torch.randint(3, 9, (n,), generator=g)
    tokens = torch.randint(4, 30, (n, 9), generator=g) * (torch.arange(9)[None] < tlens[:, None])
    return {"frames": frames, "lens": lens, "text_tokens": tokens, "text_lens": tlens}


def worker(rank: int, init_file: str, out_dir: str) -> None:
    s = sum(SIZES[:rank])
    part = {k: v[s : s + SIZES[rank]] for k, v in global_batch().items()}
    ddp_step_and_save(rank, init_file, out_dir, _Wrapper(), part)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_ddp_equals_single_process(tmp_path):
    loss, ref = single_process_step(_Wrapper(), global_batch())
    assert "objective.bias" in ref and "objective.logit_scale" in ref
    spawn_and_compare(worker, tmp_path, loss, ref)
