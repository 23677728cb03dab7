"""CNN14-style encoder: shapes, lens, padding invariance (eval and training-mode BatchNorm),
masked BatchNorm against torch's, gradients, overfit, config."""

from __future__ import annotations

import math

import pytest
import torch
from encoder_checks import assert_learns_two_bands

from toolkit.config import ConfigError
from toolkit.encoders.cnn import CNNEncoder, MaskedBatchNorm, masked_avg_pool
from toolkit.registry import ENCODERS

TINY = dict(channels=[4, 8, 8], dropout=0.0)


def padded_batch(clips: list[torch.Tensor], t: int = 0, fill: float = 7.0):
    """Clips ``(T_i, F)`` → ``(B, max(t, T_i), F)`` with ``fill`` (garbage) past each clip's end."""
    t = max([t] + [c.shape[0] for c in clips])
    batch = torch.full((len(clips), t, clips[0].shape[1]), fill)
    for i, c in enumerate(clips):
        batch[i, : c.shape[0]] = c
    return batch, torch.tensor([c.shape[0] for c in clips])


def randomise_bn_stats(enc: torch.nn.Module) -> None:
    """Non-trivial running statistics and affine parameters, so eval-mode BN shifts padding."""
    g = torch.Generator().manual_seed(1)
    for m in enc.modules():
        if isinstance(m, MaskedBatchNorm):
            n = m.weight.shape[0]
            m.running_mean.copy_(torch.randn(n, generator=g))
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g))


@pytest.mark.parametrize(
    "kw,stride",
    [
        (dict(), 4),  # the last block does not pool
        (dict(pool_last=True, freq_pool="max_mean", proj_dim=12), 8),
        (dict(time_pool_blocks=1, input_norm=False), 2),
    ],
)
def test_eval_padding_invariance_shapes_and_lens(kw, stride):
    torch.manual_seed(0)
    enc = CNNEncoder(input_dim=16, **TINY, **kw).eval()
    randomise_bn_stats(enc)
    assert enc.output_dim == kw.get("proj_dim", 8)
    lengths = [37, 20, 1, 5, 3]  # 1, 3 are shorter than the total pooling window
    clips = [torch.randn(n, 16) for n in lengths]
    batch, lens_in = padded_batch(clips)
    out, lens = enc(batch, lens_in)
    assert enc.frame_stride == stride
    assert lens.tolist() == [math.ceil(n / stride) for n in lengths]  # ceil of ceils = ceil
    assert min(lens.tolist()) >= 1
    assert out.shape == (5, math.ceil(37 / stride), enc.output_dim)
    assert torch.isfinite(out).all()
    for i, clip in enumerate(clips):
        alone, alone_lens = enc(clip[None], lens_in[i : i + 1])
        n = int(lens[i])
        assert int(alone_lens[0]) == n and alone.shape[1] == n
        torch.testing.assert_close(out[i, :n], alone[0], rtol=1e-5, atol=1e-5)
        assert torch.all(out[i, n:] == 0)


def test_frame_stride_of_configs():
    assert CNNEncoder(16, channels=[2, 2, 2]).frame_stride == 4
    assert CNNEncoder(16, channels=[2, 2, 2], pool_last=True).frame_stride == 8
    assert CNNEncoder(16, channels=[2, 2, 2], time_pool_blocks=1).frame_stride == 2
    with torch.device("meta"):  # the real CNN14, without allocating its weights
        cnn14 = CNNEncoder(64)
    assert cnn14.frame_stride == 32 and cnn14.output_dim == 2048 and len(cnn14.blocks) == 6
    n_params = sum(p.numel() for p in cnn14.parameters())
    assert 75_000_000 < n_params < 76_000_000  # PANNs' 80.8M minus fc1 (4.2M) and classifier


def test_empty_clip_gives_zero_without_nan():
    enc = CNNEncoder(input_dim=16, **TINY)
    for mode in (enc.eval(), enc.train()):
        out, lens = mode(torch.randn(2, 12, 16), torch.tensor([12, 0]))
        assert lens.tolist() == [3, 0] and torch.isfinite(out).all() and torch.all(out[1] == 0)


def test_training_mode_batch_statistics_ignore_padding():
    """Same clips, padded to different lengths with different garbage: identical valid outputs,
    gradients and running statistics in training mode."""
    torch.manual_seed(0)
    clips = [torch.randn(n, 16) for n in (30, 11, 2)]
    results = []
    for t, fill in ((30, 0.0), (52, 9.0)):
        torch.manual_seed(0)
        enc = CNNEncoder(input_dim=16, **TINY, freq_pool="max_mean").train()
        batch, lens_in = padded_batch(clips, t, fill)
        out, lens = enc(batch, lens_in)
        (out * torch.arange(out.shape[-1])).sum().backward()
        bn = enc.blocks[1].bn2
        results.append((out, lens, bn.running_mean.clone(), enc.blocks[0].conv1.weight.grad))
    (o1, l1, rm1, g1), (o2, l2, rm2, g2) = results
    assert torch.equal(l1, l2)
    torch.testing.assert_close(o1, o2[:, : o1.shape[1]], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(rm1, rm2, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(g1, g2, rtol=1e-4, atol=1e-5)


def test_masked_batchnorm_matches_torch_on_the_valid_frames():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 10, 4) * 2 + 1
    lens = torch.tensor([10, 6])
    x[1, :, 6:] = 100.0  # padding that plain BatchNorm would count
    mbn, ref = MaskedBatchNorm(3).train(), torch.nn.BatchNorm2d(3).train()
    mask = torch.arange(10)[None] < lens[:, None]
    y = mbn(x, mask)
    valid = torch.cat([x[0], x[1, :, :6]], dim=1)[None]  # (1, C, 16, F): the valid frames only
    y_ref = ref(valid)[0]
    torch.testing.assert_close(torch.cat([y[0], y[1, :, :6]], dim=1), y_ref)
    torch.testing.assert_close(mbn.running_mean, ref.running_mean)
    torch.testing.assert_close(mbn.running_var, ref.running_var)
    mbn.eval(), ref.eval()
    torch.testing.assert_close(mbn(x, mask)[0], ref(x)[0])
    before = mbn.running_mean.clone(), mbn.running_var.clone()
    y = mbn.train()(x, torch.zeros_like(mask))  # nothing valid: stats untouched, no NaN
    assert torch.isfinite(y).all()
    assert torch.equal(mbn.running_mean, before[0]) and torch.equal(mbn.running_var, before[1])


def test_masked_avg_pool_averages_valid_frames_only():
    x = torch.arange(1.0, 6.0)[None, None, :, None].expand(1, 1, 5, 2).clone()  # frames 1..5
    out, lens = masked_avg_pool(x, torch.tensor([3]), 2, 2)
    assert lens.tolist() == [2] and out.shape == (1, 1, 3, 1)
    assert out[0, 0, :, 0].tolist() == [1.5, 3.0, 0.0]  # last valid window holds frame 3 alone


def test_gradients_reach_the_first_conv():
    enc = CNNEncoder(input_dim=16, **TINY, proj_dim=6)
    out, _ = enc(torch.randn(2, 20, 16), torch.tensor([20, 9]))
    out.pow(2).sum().backward()
    for p in (enc.blocks[0].conv1.weight, enc.input_norm.weight, enc.proj.weight):
        assert p.grad is not None and p.grad.abs().sum() > 0


def test_tiny_overfit_two_classes():
    """A linear head on the mean output tells low-band from high-band clips within 50 steps."""
    torch.manual_seed(0)
    assert_learns_two_bands(CNNEncoder(input_dim=16, **TINY), frames=32, min_len=8)


def test_build_from_config_and_errors():
    cfg = {"name": "cnn", "channels": [4, 8, 16, 16], "num_blocks": 3}
    enc = ENCODERS.build(cfg, key="encoder", input_dim=64)
    assert isinstance(enc, CNNEncoder) and enc.output_dim == 16 and len(enc.blocks) == 3
    with pytest.raises(ConfigError, match="encoder.channel: unknown key.*channels"):
        ENCODERS.build({"name": "cnn", "channel": [4]}, key="encoder", input_dim=64)
    with pytest.raises(ConfigError, match="encoder.channels: expected"):
        ENCODERS.build({"name": "cnn", "channels": 64}, key="encoder", input_dim=64)
    with pytest.raises(ValueError, match="too few"):
        CNNEncoder(input_dim=8, channels=[2, 2, 2, 2, 2])  # 8 bins cannot be halved 4 times
    with pytest.raises(ValueError, match="num_blocks"):
        CNNEncoder(input_dim=64, channels=[2, 2], num_blocks=3)
