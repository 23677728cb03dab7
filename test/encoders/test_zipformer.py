"""Zipformer encoder: padding invariance, frame rates, presets vs published parameter counts,
building blocks against hand computations, the ``describe`` CLI."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from toolkit.bin import describe
from toolkit.config import ConfigError
from toolkit.encoders import zipformer_modules as zm
from toolkit.encoders.zipformer import PRESETS, ZipformerEncoder
from toolkit.registry import ENCODERS

PRESET_DIR = Path(__file__).resolve().parents[2] / "egs" / "TEMPLATE" / "conf" / "encoder"

# A tiny network with the real topology (six stacks at factors 1,2,4,8,4,2, unequal dims).
TINY = dict(
    size="S",
    num_encoder_layers=1,
    encoder_dim=[32, 48, 32, 48, 32, 24],
    encoder_unmasked_dim=16,
    feedforward_dim=64,
    num_heads=2,
    query_head_dim=8,
    value_head_dim=4,
    pos_head_dim=2,
    pos_dim=8,
    cnn_module_kernel=[7, 7, 5, 5, 5, 7],
    subsampling_channels=[4, 8, 16],
)

# icefall LibriSpeech transducers (RESULTS.md) minus their decoder/joiner/simple projections
# (vocab 500, decoder/joiner dim 512): that leaves encoder_embed + encoder.
PUBLISHED_TRANSDUCER = {"S": 23_285_615, "M": 65_549_011, "L": 148_439_574}


def non_encoder_params(enc_out: int, vocab: int = 500, dec: int = 512, join: int = 512) -> int:
    decoder = vocab * dec + dec * (dec // (dec // 4)) * 2  # embedding + grouped conv (no bias)
    joiner = (enc_out * join + join) + (dec * join + join) + (join * vocab + vocab)
    simple_proj = (enc_out * vocab + vocab) + (dec * vocab + vocab)
    return decoder + joiner + simple_proj


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def expected_out_len(t: int) -> int:
    return (max((t - 7) // 2, 0) + 1) // 2


@pytest.mark.parametrize("output_dim", [None, 40])
def test_padding_invariance_shapes_and_zeroed_padding(output_dim):
    torch.manual_seed(0)
    enc = ZipformerEncoder(80, output_dim=output_dim, **TINY).eval()
    assert enc.output_dim == (output_dim or 48)  # known before any forward
    a, b = torch.randn(1, 300, 80), torch.randn(1, 171, 80)
    batch = torch.full((2, 300, 80), 7.0)  # garbage in the padding
    batch[0], batch[1, :171] = a[0], b[0]
    out, lens = enc(batch, torch.tensor([300, 171]))
    assert lens.tolist() == [expected_out_len(300), expected_out_len(171)]
    assert out.shape == (2, expected_out_len(300), enc.output_dim)
    alone, alone_lens = enc(b, torch.tensor([171]))
    n = int(alone_lens[0])
    assert alone.shape[1] == n
    torch.testing.assert_close(out[1, :n], alone[0], rtol=1e-5, atol=1e-5)
    assert torch.all(out[1, n:] == 0)
    first, _ = enc(a, torch.tensor([300]))
    torch.testing.assert_close(out[0], first[0], rtol=1e-5, atol=1e-5)


def test_frame_rates_100_to_25():
    enc = ZipformerEncoder(80, **TINY).eval()
    with torch.no_grad():
        out, lens = enc(torch.randn(1, 1000, 80), torch.tensor([1000]))
    assert int(lens[0]) == out.shape[1] == 248  # (1000-7)//2 = 496 at 50 Hz, then /2
    with torch.no_grad():
        x, l50 = enc.encoder_embed(torch.randn(1, 1000, 80), torch.tensor([1000]))
    assert x.shape[1] == int(l50[0]) == 496


def test_training_mode_gradients_and_schedule_counter():
    torch.manual_seed(0)
    enc = ZipformerEncoder(80, **TINY).train()
    x = torch.randn(3, 120, 80)
    out, lens = enc(x, torch.tensor([120, 90, 40]))
    (out**2).sum().backward()
    missing = [n for n, p in enc.named_parameters() if p.grad is None]
    assert not missing
    assert all(torch.isfinite(p.grad).all() for p in enc.parameters())
    assert int(enc.batch_count) == 1
    enc.eval()
    enc(x, torch.tensor([120, 90, 40]))
    assert int(enc.batch_count) == 1  # eval forwards do not advance the schedules


def test_too_short_input_gives_zero_length_and_no_nan():
    enc = ZipformerEncoder(80, **TINY).eval()
    out, lens = enc(torch.randn(2, 40, 80), torch.tensor([40, 5]))
    assert lens.tolist() == [expected_out_len(40), 0]
    assert torch.isfinite(out).all() and torch.all(out[1] == 0)
    out, lens = enc(torch.randn(1, 4, 80), torch.tensor([4]))
    assert lens.tolist() == [0] and torch.isfinite(out).all()


@pytest.mark.parametrize("size", ["S", "M", "L"])
def test_preset_parameter_counts_match_published(size):
    """Counted from the built module (on the meta device: no memory, no forward)."""
    with torch.device("meta"):
        enc = ZipformerEncoder(80, size=size)
    got = n_params(enc)
    enc_out = max(PRESETS[size]["encoder_dim"])
    published_encoder = PUBLISHED_TRANSDUCER[size] - non_encoder_params(enc_out)
    assert enc.output_dim == enc_out
    assert abs(got - published_encoder) / published_encoder < 0.02, (got, published_encoder)
    # icefall also counts its per-layer ``bypass_scale``, unused in its forward (a buffer here)
    unused = sum(b.numel() for n, b in enc.named_buffers() if n.endswith(".bypass_scale"))
    assert got + unused == published_encoder
    if size == "M":  # M: 65.55 M transducer → 63.99 M encoder; the study quotes ≈ 65 M
        assert published_encoder == 63_994_103
        assert abs(got - 65e6) / 65e6 < 0.02


def test_explicit_kwargs_override_the_preset_and_bad_lists_fail():
    with torch.device("meta"):
        m = ZipformerEncoder(80, size="M")
        fewer = ZipformerEncoder(80, size="M", num_encoder_layers=1)
    assert m.cfg["num_encoder_layers"] == [2, 2, 3, 4, 3, 2]
    assert fewer.cfg["num_encoder_layers"] == [1] * 6
    assert fewer.cfg["encoder_dim"] == m.cfg["encoder_dim"]
    assert n_params(fewer) < n_params(m)
    with pytest.raises(ConfigError, match="encoder.num_heads: 2 values for 6 stacks"):
        ZipformerEncoder(80, num_heads=[4, 4])
    with pytest.raises(ConfigError, match="encoder_unmasked_dim: 300 exceeds"):
        ZipformerEncoder(80, size="S", encoder_unmasked_dim=300)
    with pytest.raises(ConfigError, match="unknown key for encoder 'zipformer'"):
        ENCODERS.build({"name": "zipformer", "num_layers": 3}, key="encoder", input_dim=80)
    with pytest.raises(ConfigError, match="encoder.padding"):
        ZipformerEncoder(80, size="S", padding="zeros")
    with torch.device("meta"):  # a one-element list is the value of every stack (as icefall)
        assert ZipformerEncoder(80, query_head_dim=[16]).cfg["query_head_dim"] == [16] * 6


def test_registry_build_with_projection():
    enc = ENCODERS.build(
        {"name": "zipformer", **TINY, "output_dim": 20}, key="encoder", input_dim=64
    )
    assert isinstance(enc, ZipformerEncoder) and enc.output_dim == 20
    out, _ = enc.eval()(torch.randn(1, 50, 64), torch.tensor([50]))
    assert out.shape[-1] == 20


# --------------------------------------------------------------------------- building blocks


def test_swoosh_matches_formula():
    x = torch.tensor([-30.0, -1.0, 0.0, 1.0, 4.0, 30.0], dtype=torch.float64)
    want_l = [math.log1p(math.exp(v - 4)) - 0.08 * v - 0.035 for v in x.tolist()]
    want_r = [math.log1p(math.exp(v - 1)) - 0.08 * v - 0.313261687 for v in x.tolist()]
    torch.testing.assert_close(zm.swoosh_l(x), torch.tensor(want_l, dtype=torch.float64))
    torch.testing.assert_close(zm.swoosh_r(x), torch.tensor(want_r, dtype=torch.float64))
    assert abs(float(zm.swoosh_r(torch.tensor(0.0)))) < 1e-6  # SwooshR(0) = 0 by design


def test_swoosh_k2_fast_path_equals_reference():
    k2 = pytest.importorskip("k2", reason="k2 (optional CUDA fast path) is not installed")
    x = torch.randn(1000) * 6
    torch.testing.assert_close(k2.swoosh_l_forward(x), zm.swoosh_l_reference(x))
    torch.testing.assert_close(k2.swoosh_r_forward(x), zm.swoosh_r_reference(x))


def test_bias_norm_hand_computation():
    torch.manual_seed(0)
    norm = zm.BiasNorm(6)
    with torch.no_grad():
        norm.bias.copy_(torch.randn(6))
        norm.log_scale.fill_(0.3)
    x = torch.randn(2, 3, 6)
    rms = ((x - norm.bias) ** 2).mean(-1, keepdim=True).sqrt()
    torch.testing.assert_close(norm(x), x / rms * math.exp(0.3), rtol=1e-5, atol=1e-6)


def test_compact_rel_positions_symmetry():
    pe = zm.compact_rel_positions(5, 8)  # offsets -4..4
    assert pe.shape == (9, 8)
    zero = pe[4]
    torch.testing.assert_close(zero[0:-1:2], torch.ones(4))  # cos(0)
    torch.testing.assert_close(zero[1:-1:2], torch.zeros(3))  # sin(0), last channel is 1
    assert float(pe[:, -1].min()) == 1.0
    torch.testing.assert_close(pe[3, 0:-1:2], pe[5, 0:-1:2])  # cos even in the offset
    torch.testing.assert_close(pe[3, 1:-1:2], -pe[5, 1:-1:2])  # sin odd


def test_attention_positional_scores_depend_on_offset_only():
    """With q·k switched off, the score of (i, j) depends only on i - j."""
    torch.manual_seed(0)
    att = zm.RelPosAttentionWeights(8, num_heads=1, query_head_dim=2, pos_head_dim=2, pos_dim=6)
    att.eval()
    with torch.no_grad():
        att.in_proj.weight[:4] = 0.0  # q and k rows
        att.in_proj.bias[:4] = 0.0
        att.in_proj.weight[4:] = 0.0  # the positional query is a constant (bias only)
    pos = zm.compact_rel_positions(6, 6)
    w = att(torch.randn(1, 6, 8), pos, torch.ones(1, 6, dtype=torch.bool))[0, 0]
    logits = w.log()
    logits = logits - logits[:, :1]  # softmax is shift-invariant per row
    # the score difference between offsets i-j=0 and i-j=1 is the same on every row
    d = torch.stack([logits[i, i] - logits[i, i - 1] for i in range(1, 6)])
    torch.testing.assert_close(d, d[:1].expand(5), rtol=1e-4, atol=1e-5)


def test_downsample_repeats_last_valid_frame_and_upsample():
    ds = zm.Downsample(4)
    with torch.no_grad():
        ds.bias.copy_(torch.tensor([0.1, -0.2, 0.3, 0.0]))
    w = ds.bias.detach().softmax(0)
    x = torch.randn(1, 7, 3)
    x_pad = torch.cat([x, torch.full((1, 5, 3), 9.0)], dim=1)  # 12 frames, 7 valid
    y, lens = ds(x_pad, torch.tensor([7]))
    assert lens.tolist() == [2]
    group2 = torch.stack([x[0, 4], x[0, 5], x[0, 6], x[0, 6]])  # completed by repetition
    torch.testing.assert_close(y[0, 1], (w[:, None] * group2).sum(0))
    torch.testing.assert_close(y[0, 0], (w[:, None] * x[0, :4]).sum(0))
    up = zm.upsample(y, 4, 7)
    assert up.shape == (1, 7, 3) and torch.equal(up[0, 5], y[0, 1])


def test_convert_channels_pads_and_truncates():
    x = torch.randn(2, 3, 5)
    assert torch.equal(zm.convert_channels(x, 3), x[..., :3])
    y = zm.convert_channels(x, 8)
    assert torch.equal(y[..., :5], x) and torch.all(y[..., 5:] == 0)


# --------------------------------------------------------------------------- describe CLI


def test_describe_cli_on_the_s_preset(capsys):
    cfg_path = PRESET_DIR / "zipformer_s.yaml"
    assert describe.main([str(cfg_path), "encoder.num_encoder_layers=1", "--seconds", "2"]) == 0
    text = capsys.readouterr().out
    with torch.device("meta"):
        enc = ZipformerEncoder(80, size="S", num_encoder_layers=1)
    assert f"{n_params(enc):,}" in text
    t_in = 198  # 2 s of 16 kHz audio, 25 ms windows every 10 ms
    assert f"input:  {t_in} frames for 2 s = 99.0 frames/s, 80 dims" in text
    t_out = expected_out_len(t_in)
    assert f"output: {t_out} frames for 2 s = {t_out / 2:.1f} frames/s, 256 dims" in text


def test_describe_with_include_and_frontend(tmp_path):
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(
        f"include: [{PRESET_DIR / 'zipformer_s.yaml'}]\n"
        "frontend: {name: fbank, num_mel_bins: 64}\n"
        "encoder: {output_dim: 32}\n"
    )
    from toolkit.config import load_config

    d = describe.describe(
        load_config(cfg, [f"encoder.{k}={v}" for k, v in TINY.items() if k != "size"]), 1.0
    )
    assert d["frontend"].output_dim == 64 and d["output_dim"] == 32
    assert d["output_frames"] == expected_out_len(d["input_frames"])
    assert d["total_params"] == n_params(d["frontend"]) + n_params(d["encoder"])


def test_schedule_position_is_read_from_the_device_once():
    """The regulariser schedules advance on a host copy of ``batch_count``: after the first
    forward no step reads a device scalar (each read stalls a CUDA stream); loading a state
    dict makes the next forward read the loaded count."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class CountReads(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.reads = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.reads += "_local_scalar_dense" in func.__name__
            return func(*args, **(kwargs or {}))

    torch.manual_seed(0)
    enc = ZipformerEncoder(40, warmup_batches=2.0, **TINY).train()
    x, lens = torch.randn(2, 60, 40), torch.tensor([60, 48])
    enc(x, lens)
    with CountReads() as c:
        for _ in range(6):  # across the layer-skip, module-skip and scale_min milestones
            enc(x, lens)
    assert c.reads == 0 and int(enc.batch_count) == 7
    other = ZipformerEncoder(40, warmup_batches=2.0, **TINY).train()
    other(x, lens)  # its own position: 1
    other.load_state_dict(enc.state_dict())
    other(x, lens)
    assert int(other.batch_count) == 8


@pytest.mark.slow
def test_compiled_encoder_keeps_four_graphs_through_the_warmup():
    """Under torch.compile the schedules cost one graph break and a new graph only when a
    ramp reaches its final value (layer skips at warmup_batches, module skip at 4×, scale_min at
    5×): 4 graphs over a run, never one per step (which used to exhaust dynamo's recompile
    limit within 8 steps and fall back to eager). Same outputs as the eager module."""
    import torch._dynamo
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    torch.manual_seed(0)
    enc = ZipformerEncoder(40, warmup_batches=2.0, **TINY).train()
    ref = ZipformerEncoder(40, warmup_batches=2.0, **TINY).train()
    ref.load_state_dict(enc.state_dict())
    compiled = torch.compile(enc, backend="eager")
    x, lens = torch.randn(2, 60, 40), torch.tensor([60, 48])
    for step in range(14):  # t = 0 … 13: past 5 × warmup_batches
        torch.manual_seed(step)
        y, _ = compiled(x, lens)
        torch.manual_seed(step)
        y_ref, _ = ref(x, lens)
        torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-6)
    graphs = counters["stats"]["unique_graphs"]
    breaks = sum(counters["graph_break"].values())
    torch._dynamo.reset()
    assert breaks == 1  # the host-side schedule call
    assert graphs <= 5  # before the break + 4 versions of the rest
