"""Contract checks shared by every built-in encoder: output_dim, gradients reach every
parameter, and bf16 autocast agrees with fp32 (tiny configs, CPU)."""

from __future__ import annotations

import pytest
import torch

from toolkit.registry import ENCODERS

ENCODERS.load_builtins()

INPUT_DIM = 32
TINY = {
    "transformer": {
        "dim": 32, "num_layers": 1, "num_heads": 2, "ff_dim": 64, "dropout": 0.0,
        "subsampling_channels": 8, "conv_kernel": 5,
    },
    "zipformer": {
        "size": "S", "downsampling_factor": [1, 2], "num_encoder_layers": 1,
        "encoder_dim": [32, 48], "encoder_unmasked_dim": 32, "feedforward_dim": [64, 96],
        "num_heads": 2, "cnn_module_kernel": [5, 5], "subsampling_channels": [4, 8, 16],
        "output_dim": 32, "dropout": 0.0, "layer_skip_rate": 0.0, "module_skip_rate": 0.0,
        "feature_mask_prob": 0.0,
    },
    "patch_transformer": {
        "dim": 32, "num_layers": 1, "num_heads": 2, "ff_dim": 64, "dropout": 0.0,
        "patch_time": 8, "patch_freq": 8, "stride_time": 4, "stride_freq": 8,
    },
    "cnn": {"channels": [4, 8], "proj_dim": 16, "dropout": 0.0},
}  # fmt: skip


def build(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return ENCODERS.build({"name": name, **TINY[name]}, key="encoder", input_dim=INPUT_DIM)


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(3, 120, INPUT_DIM, generator=g), torch.tensor([120, 90, 57])


def test_every_builtin_encoder_is_covered():
    assert set(ENCODERS.names()) <= set(TINY), "add a tiny config for the new encoder here"


@pytest.mark.parametrize("name", sorted(TINY))
def test_gradients_reach_every_parameter(name):
    enc = build(name).train()
    feats, lens = batch()
    hidden, hlens = enc(feats, lens)
    assert hidden.shape[0] == 3 and hidden.shape[2] == enc.output_dim
    assert bool((hlens >= 1).all()) and int(hlens.max()) <= hidden.shape[1]
    hidden.pow(2).sum().backward()
    no_grad = [
        n
        for n, p in enc.named_parameters()
        if p.requires_grad and (p.grad is None or not torch.isfinite(p.grad).all())
    ]
    assert not no_grad, f"{name}: no (finite) gradient for {no_grad}"
    zero = [n for n, p in enc.named_parameters() if p.requires_grad and p.grad.abs().sum() == 0]
    assert len(zero) <= len(list(enc.parameters())) // 10, f"{name}: all-zero grads {zero}"


@pytest.mark.parametrize("name", sorted(TINY))
def test_bf16_autocast_agrees_with_fp32(name):
    enc = build(name).eval()
    feats, lens = batch()
    with torch.no_grad():
        ref, ref_lens = enc(feats, lens)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low, low_lens = enc(feats, lens)
    assert torch.equal(ref_lens, low_lens)
    low = low.float()
    assert torch.isfinite(low).all()
    rel = (low - ref).norm() / ref.norm().clamp(min=1e-6)
    assert rel < 0.05, f"{name}: bf16 vs fp32 relative error {rel:.4f}"
    cos = torch.nn.functional.cosine_similarity(low.flatten(), ref.flatten(), dim=0)
    assert cos > 0.998


# the random training-time parts switched on, so that the recompute must replay the same draws
RANDOM = {
    "transformer": {"dropout": 0.2},
    "zipformer": {"dropout": 0.2, "layer_skip_rate": 0.3, "module_skip_rate": 0.3},
}


@pytest.mark.parametrize("name", sorted(RANDOM))
def test_activation_checkpointing_gives_the_same_outputs_and_gradients(name):
    results = []
    for flag in (False, True):
        torch.manual_seed(0)
        cfg = {"name": name, **TINY[name], **RANDOM[name], "activation_checkpointing": flag}
        enc = ENCODERS.build(cfg, key="encoder", input_dim=INPUT_DIM).train()
        feats, lens = batch()
        torch.manual_seed(5)
        hidden, _ = enc(feats, lens)
        hidden.pow(2).sum().backward()
        grads = {n: p.grad.clone() for n, p in enc.named_parameters() if p.grad is not None}
        results.append((hidden.detach(), grads))
    (h0, g0), (h1, g1) = results
    torch.testing.assert_close(h1, h0, rtol=0, atol=0)
    assert g0.keys() == g1.keys() and len(g0) > 0
    for n in g0:
        torch.testing.assert_close(g1[n], g0[n], rtol=1e-5, atol=1e-7, msg=n)
