"""Patch Transformer encoder: shapes, lens, padding invariance, gradients, overfit, config."""

from __future__ import annotations

import math

import pytest
import torch
from encoder_checks import assert_learns_two_bands

from toolkit.config import ConfigError
from toolkit.encoders.patch_transformer import PatchTransformerEncoder
from toolkit.registry import ENCODERS

TINY = dict(dim=32, num_layers=2, num_heads=4, ff_dim=64, dropout=0.0)


def expected_columns(length: int, patch: int, stride: int) -> int:
    """Patch starts 0, stride, ... until one patch reaches the clip's last frame."""
    if length == 0:
        return 0
    n, start = 1, 0
    while start + patch < length:
        start += stride
        n += 1
    return n


def padded_batch(clips: list[torch.Tensor], fill: float = 7.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Clips ``(T_i, F)`` → ``(B, max T, F)`` with ``fill`` (garbage) past each clip's end."""
    t = max(c.shape[0] for c in clips)
    batch = torch.full((len(clips), t, clips[0].shape[1]), fill)
    for i, c in enumerate(clips):
        batch[i, : c.shape[0]] = c
    return batch, torch.tensor([c.shape[0] for c in clips])


@pytest.mark.parametrize(
    "kw",
    [
        dict(),  # 16x16 patches, stride 10/16
        dict(stride_freq=10, positions="learned", freq_pool="attention"),
        dict(patch_time=8, stride_time=8, cls_token=True),
        dict(patch_time=16, stride_time=4, patch_freq=8, stride_freq=6, freq_pool="attention"),
    ],
)
def test_padding_invariance_shapes_and_lens(kw):
    torch.manual_seed(0)
    enc = PatchTransformerEncoder(input_dim=40, **TINY, **kw).eval()
    assert enc.output_dim == 32
    if kw.get("freq_pool") == "attention":  # a non-uniform pooling, so it is really exercised
        torch.nn.init.normal_(enc.pool_query, std=1.0)
    lengths = [93, 57, 7, 16, 1]  # 7 and 1 are shorter than one patch
    clips = [torch.randn(n, 40) for n in lengths]
    batch, lens_in = padded_batch(clips)
    out, lens = enc(batch, lens_in)
    pt, st = enc.patch[0], enc.stride[0]
    assert lens.tolist() == [expected_columns(n, pt, st) for n in lengths]
    assert min(lens.tolist()) >= 1
    assert out.shape == (5, expected_columns(93, pt, st), 32)
    assert torch.isfinite(out).all()
    _, _, cls_batch = enc.forward_with_cls(batch, lens_in)
    for i, clip in enumerate(clips):
        alone, alone_lens, cls_alone = enc.forward_with_cls(clip[None], lens_in[i : i + 1])
        n = int(lens[i])
        assert int(alone_lens[0]) == n and alone.shape[1] == n
        torch.testing.assert_close(out[i, :n], alone[0], rtol=1e-5, atol=1e-5)
        assert torch.all(out[i, n:] == 0)
        if kw.get("cls_token"):
            torch.testing.assert_close(cls_batch[i], cls_alone[0], rtol=1e-5, atol=1e-5)
        else:
            assert cls_alone is None


def test_padding_is_masked_not_just_zeroed():
    """Without the key mask, the padded (all-zero) patches would still be attended to."""
    torch.manual_seed(0)
    enc = PatchTransformerEncoder(input_dim=16, **TINY, patch_freq=16, stride_freq=16).eval()
    clip = torch.randn(30, 16)
    alone, _ = enc(clip[None], torch.tensor([30]))
    padded = torch.cat([clip, torch.zeros(70, 16)])[None]
    out, lens = enc(padded, torch.tensor([30]))
    torch.testing.assert_close(out[0, : int(lens[0])], alone[0], rtol=1e-5, atol=1e-5)
    unmasked, _ = enc(padded, torch.tensor([100]))  # same zeros, now counted as valid
    assert not torch.allclose(unmasked[0, : int(lens[0])], alone[0], atol=1e-3)


def test_empty_clip_and_long_input():
    enc = PatchTransformerEncoder(input_dim=16, **TINY, patch_freq=16, stride_freq=16).eval()
    out, lens = enc(torch.randn(2, 40, 16), torch.tensor([40, 0]))
    assert lens.tolist() == [expected_columns(40, 16, 10), 0]
    assert torch.isfinite(out).all() and torch.all(out[1] == 0)
    out, lens = enc(torch.randn(1, 2000, 16), torch.tensor([2000]))  # no maximum length
    assert out.shape == (1, expected_columns(2000, 16, 10), 32) and torch.isfinite(out).all()


def test_position_tables_and_frame_rate():
    enc = PatchTransformerEncoder(input_dim=80)
    assert enc.num_freq_patches == 5 and enc.frame_stride == 10  # 100 frames/s → 10 vectors/s
    pos = enc._position_table(7, 5, torch.device("cpu"))
    assert pos.shape == (7, 5, 256)
    assert torch.equal(pos[3, 0, :128], pos[3, 4, :128])  # time half shared across a column
    assert torch.equal(pos[0, 2, 128:], pos[6, 2, 128:])  # freq half shared across a row
    assert not torch.equal(pos[0, 0], pos[0, 1]) and not torch.equal(pos[0, 0], pos[1, 0])
    learned = PatchTransformerEncoder(input_dim=128, stride_freq=10, positions="learned")
    assert learned.num_freq_patches == math.ceil((128 - 16) / 10) + 1


def test_gradients_reach_the_patch_embedding():
    torch.manual_seed(0)
    enc = PatchTransformerEncoder(input_dim=32, **TINY, cls_token=True, freq_pool="attention")
    out, lens = enc(torch.randn(2, 50, 32), torch.tensor([50, 20]))
    (out * torch.randn_like(out)).sum().backward()  # a plain sum of LayerNorm outputs is ~0
    for p in (enc.embed.weight, enc.cls, enc.pool_query, enc.layers[0].attn.qkv.weight):
        assert p.grad is not None and p.grad.abs().sum() > 0


def test_tiny_overfit_two_classes():
    """A linear head on the mean output tells low-band from high-band clips within 50 steps."""
    torch.manual_seed(0)
    enc = PatchTransformerEncoder(
        input_dim=16, **TINY, patch_time=8, patch_freq=8, stride_time=4, stride_freq=8
    )
    assert_learns_two_bands(enc, frames=40, min_len=12, lr=3e-3)


def test_build_from_config_and_errors():
    cfg = {"name": "patch_transformer", "dim": 32, "num_layers": 1, "num_heads": 2}
    enc = ENCODERS.build({**cfg, "positions": "learned"}, key="encoder", input_dim=64)
    assert isinstance(enc, PatchTransformerEncoder) and enc.output_dim == 32
    with pytest.raises(ConfigError, match="encoder.patch_size: unknown key.*patch_time"):
        ENCODERS.build({**cfg, "patch_size": 16}, key="encoder", input_dim=64)
    with pytest.raises(ConfigError, match="encoder.freq_pool: expected"):
        ENCODERS.build({**cfg, "freq_pool": "max"}, key="encoder", input_dim=64)
    with pytest.raises(ValueError, match="stride <= patch"):
        PatchTransformerEncoder(input_dim=64, patch_time=8, stride_time=10)
