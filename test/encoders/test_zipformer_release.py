"""Released icefall / Auden Zipformer checkpoints in the toolkit's ``zipformer`` encoder: the
fixture written by Auden's own code (../shared/fixtures/auden_zipformer_tiny) loads strictly and
reproduces Auden's output; config mapping errors; old toolkit layout migration."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
import yaml
from fixtures import TINY_ZIPFORMER, shared_fixture

from toolkit.config import ConfigError
from toolkit.encoders import zipformer_modules as zm
from toolkit.encoders import zipformer_release as zr
from toolkit.encoders.zipformer import ZipformerEncoder
from toolkit.registry import ENCODERS

FIXTURE = shared_fixture("auden_zipformer_tiny")
TOL = 1e-5


@pytest.fixture(scope="module")
def fixture_dir() -> Path:
    if not (FIXTURE / "io.pt").is_file():
        pytest.skip(f"release fixture not found at {FIXTURE}")
    return FIXTURE


@pytest.fixture(scope="module")
def io(fixture_dir) -> dict:
    return torch.load(fixture_dir / "io.pt", weights_only=True)


def build(block: dict) -> ZipformerEncoder:
    return ENCODERS.build(block, key="encoder", input_dim=80).eval()


def max_diff(out: torch.Tensor, lens: torch.Tensor, io: dict) -> float:
    """Max |out - io.out| over the valid frames of every clip (icefall leaves whatever the
    computation gave in padded frames; the toolkit zeroes them)."""
    assert torch.equal(lens, io["out_lens"])
    assert out.shape == io["out"].shape
    return max(
        float((out[b, :n] - io["out"][b, :n]).abs().max()) for b, n in enumerate(lens.tolist())
    )


def run(enc: ZipformerEncoder, io: dict) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        return enc(io["x"].float(), io["x_lens"])


def test_auden_model_dir_reproduces_auden_output(fixture_dir, io):
    from safetensors.torch import load_file

    config = json.loads((fixture_dir / "model" / "config.json").read_text())
    block = zr.auden_encoder_config(config)
    assert block["name"] == "zipformer" and block["padding"] == "icefall"
    enc = build(block)
    raw = load_file(fixture_dir / "model" / "model.safetensors")
    state = zr.release_state_dict(raw)
    assert state.dropped == ["model_batch_count"] and state.prefix == ""
    assert int(state["batch_count"]) == int(raw["model_batch_count"]) == 100000
    assert len(state) == len(raw)  # every tensor but model_batch_count, plus batch_count
    result = enc.load_state_dict(state, strict=True)  # every key used, none missing
    assert not result.missing_keys and not result.unexpected_keys
    assert enc.output_dim == 64
    out, lens = run(enc, io)
    assert max_diff(out, lens, io) <= TOL
    n = int(lens[1])
    assert torch.all(out[1, n:] == 0)  # padded frames zeroed
    assert zr.load_release(build(block), raw) == ["model_batch_count"]


def test_icefall_checkpoint_and_hparams_reproduce_auden_output(fixture_dir, io):
    hparams = yaml.safe_load((fixture_dir / "icefall_hparams.yaml").read_text())
    block = zr.icefall_encoder_config(hparams)
    config = json.loads((fixture_dir / "model" / "config.json").read_text())
    assert block == {
        k: v for k, v in zr.auden_encoder_config(config).items() if k != "warmup_batches"
    }
    ckpt = torch.load(fixture_dir / "icefall_pretrained.pt", weights_only=True)
    model = dict(ckpt["model"])
    heads = {  # an icefall ASR model keeps its other heads beside the encoder
        "decoder.embedding.weight": torch.zeros(5, 4),
        "joiner.output_linear.weight": torch.zeros(5, 4),
        "simple_am_proj.weight": torch.zeros(5, 64),
        "simple_lm_proj.bias": torch.zeros(5),
        "ctc_output.1.weight": torch.zeros(5, 64),
    }
    model.update(heads)
    assert zr.is_release_state_dict(model)
    state = zr.release_state_dict(model)
    assert sorted(state.dropped) == sorted(heads)
    assert int(state["batch_count"]) == zr.TRAINED_BATCH_COUNT
    enc = build(block)
    enc.load_state_dict(state, strict=True)
    out, lens = run(enc, io)
    assert max_diff(out, lens, io) <= TOL


def test_prefixed_release_state_dict_and_import_state_dict(fixture_dir, io):
    ckpt = torch.load(fixture_dir / "icefall_pretrained.pt", weights_only=True)["model"]
    ddp = {f"module.{k}": v for k, v in ckpt.items()}  # a DDP-wrapped save
    state = zr.release_state_dict(ddp)
    assert state.prefix == "module." and set(state) == {*ckpt, "batch_count"}
    hparams = yaml.safe_load((fixture_dir / "icefall_hparams.yaml").read_text())
    enc = build(zr.icefall_encoder_config(hparams))
    imported = enc.import_state_dict({**ckpt, "joiner.w": torch.zeros(1)})  # toolkit.weights
    assert imported.layout == "an icefall Zipformer2" and imported.dropped == ["joiner.w"]
    enc.load_state_dict(imported, strict=True)
    assert max_diff(*run(enc, io), io) <= TOL
    own = {f"encoder.{k}": v for k, v in enc.state_dict().items()}  # a toolkit checkpoint
    assert enc.import_state_dict(own) is None and enc.import_state_dict(enc.state_dict()) is None
    assert not zr.is_release_state_dict(own) and not zr.is_release_state_dict(enc.state_dict())


def test_padding_modes_agree_on_an_unpadded_clip(fixture_dir, io):
    from safetensors.torch import load_file

    config = json.loads((fixture_dir / "model" / "config.json").read_text())
    enc = build({**zr.auden_encoder_config(config), "padding": "masked"})
    zr.load_release(enc, load_file(fixture_dir / "model" / "model.safetensors"))
    out, lens = run(enc, io)
    assert float((out[0] - io["out"][0]).abs().max()) <= TOL  # clip 0 is not padded
    alone, _ = enc(io["x"][1:, :217], io["x_lens"][1:])  # masked: clip 1 alone = padded
    torch.testing.assert_close(alone[0], out[1, : alone.shape[1]], rtol=1e-5, atol=1e-5)


def test_another_config_fails_loudly_naming_the_mismatched_keys(fixture_dir):
    from safetensors.torch import load_file

    config = json.loads((fixture_dir / "model" / "config.json").read_text())
    raw = load_file(fixture_dir / "model" / "model.safetensors")
    wider = build(zr.auden_encoder_config({**config, "encoder_dim": [64, 96]}))
    mismatch = r"shape mismatch \(\d+\): .*conv_module1\.in_proj\.weight \(checkpoint \(96, 48\) vs model \(128, 64\)\)"
    with pytest.raises(ConfigError, match=mismatch):
        zr.load_release(wider, raw)
    with pytest.raises(RuntimeError, match=r"size mismatch for encoder_embed\.out\.weight"):
        wider.load_state_dict(zr.release_state_dict(raw), strict=True)
    deeper = build(zr.auden_encoder_config({**config, "num_encoder_layers": [1, 2]}))
    with pytest.raises(
        ConfigError, match=r"missing \(\d+\): encoder\.encoders\.1\.encoder\.layers\.1\."
    ):
        zr.load_release(deeper, raw)
    with pytest.raises(ConfigError, match="no key ends with"):
        zr.release_state_dict({"decoder.weight": torch.zeros(1)})


def test_config_errors_name_the_key():
    base = {"model_type": "zipformer", "causal": False}
    with pytest.raises(ConfigError, match=r"auden config\.causal: true .* not supported"):
        zr.auden_encoder_config({**base, "causal": True})
    with pytest.raises(ConfigError, match=r"output_downsampling_factor: 4"):
        zr.auden_encoder_config({**base, "output_downsampling_factor": 4})
    with pytest.raises(ConfigError, match=r"auden config\.use_mamba: unknown"):
        zr.auden_encoder_config({**base, "use_mamba": True})
    with pytest.raises(ConfigError, match=r"model_type"):
        zr.auden_encoder_config({"model_type": "whisper"})
    with pytest.raises(ConfigError, match=r"icefall hparams\.causal"):
        zr.icefall_encoder_config({"causal": "True"})
    with pytest.raises(ConfigError, match=r"icefall hparams\.num_heads: 2 values for 6 stacks"):
        zr.icefall_encoder_config({"num_heads": "4,4"})
    with pytest.raises(ConfigError, match=r"icefall hparams\.encoder_dim: expected integers"):
        zr.icefall_encoder_config({"encoder_dim": "192,abc"})
    with pytest.raises(ConfigError, match="causal"):
        zr.release_state_dict(
            {
                "encoder_embed.conv.0.weight": torch.zeros(1),
                "encoder.encoders.0.layers.0.conv_module1.depthwise_conv.causal_conv.weight": (
                    torch.zeros(1)
                ),
            }
        )


def test_icefall_defaults_are_the_m_preset():
    """train.py's defaults (every option missing; unrelated options ignored) = our M preset."""
    block = zr.icefall_encoder_config({"vocab_size": 500, "lr": 0.045, "causal": "False"})
    with torch.device("meta"):
        ice = build(block)
        m = ZipformerEncoder(80, size="M")
    assert ice.cfg == m.cfg
    assert [(k, v.shape) for k, v in ice.state_dict().items()] == [
        (k, v.shape) for k, v in m.state_dict().items()
    ]
    assert zr.release_frontend_config({"feature_dim": 80}) == {"name": "fbank", "num_mel_bins": 80}


# --------------------------------------------------------------------------- old toolkit layout

# the shared tiny widths on three stacks
TINY = {**TINY_ZIPFORMER, "size": "S", "downsampling_factor": [1, 2, 4],
        "num_encoder_layers": [1, 2, 1], "encoder_dim": [16, 24, 16]}  # fmt: skip
_NEW_TO_OLD = [  # (new, old) prefixes, longest first where they overlap
    ("encoder_embed.conv.0.", "embed.conv1."),
    ("encoder_embed.conv.4.", "embed.conv2."),
    ("encoder_embed.conv.7.", "embed.conv3."),
    ("encoder_embed.convnext.depthwise_conv.", "embed.convnext.depthwise."),
    ("encoder_embed.convnext.pointwise_conv1.", "embed.convnext.pointwise1."),
    ("encoder_embed.convnext.pointwise_conv2.", "embed.convnext.pointwise2."),
    ("encoder_embed.out_norm.", "embed.norm."),
    ("encoder_embed.out.", "embed.out."),
    ("encoder.downsample_output.", "downsample_output."),
]
_LAYER_NEW_TO_OLD = [
    ("self_attn_weights.", "attn_weights."),
    ("feed_forward", "ff"),
    ("nonlin_attention.", "nonlin_attn."),
    ("conv_module", "conv"),
    ("depthwise_conv.", "depthwise."),
    ("bypass_scale", "scale"),
]


def old_layout(state: dict) -> dict:
    """What the toolkit saved before it used icefall's names (written from the old code)."""
    old = {}
    for k, v in state.items():
        m = re.fullmatch(r"encoder\.encoders\.(\d+)\.(?:encoder\.)?layers\.(\d+)\.(.*)", k)
        if m:
            i, j, rest = m.groups()
            if rest == "bypass_scale":  # icefall's unused per-layer parameter: not in old files
                continue
            for new, was in _LAYER_NEW_TO_OLD:
                rest = rest.replace(new, was)
            if rest.endswith("linear_pos.weight"):
                v = v.clone()
                v[:, 1:-1:2] *= -1  # the old code read relative positions as i - j
            old[f"stacks.{i}.layers.{j}.{rest}"] = v
            continue
        m = re.fullmatch(
            r"encoder\.encoders\.(\d+)\.(downsample\.bias|out_combiner\.bypass_scale)", k
        )
        if m:
            old[f"stacks.{m.group(1)}.{m.group(2).replace('bypass_scale', 'scale')}"] = v
            continue
        for new, was in _NEW_TO_OLD:
            if k.startswith(new):
                k = was + k[len(new) :]
                break
        old[k] = v
    return old


def test_old_toolkit_layout_refuses_to_load_and_migrates():
    torch.manual_seed(0)
    enc = ZipformerEncoder(40, output_dim=12, **TINY).eval()
    with torch.no_grad():
        for p in enc.parameters():
            p.add_(0.1 * torch.randn_like(p))
        for n, p in enc.named_parameters():
            if n.endswith("bypass_scale"):
                p.clamp_(0.2, 1.0)  # the old code's eval-time clamp is then a no-op
        enc.batch_count.fill_(100000)
    state = enc.state_dict()
    old = old_layout(state)
    assert zr.is_old_toolkit_state_dict(old) and not zr.is_release_state_dict(old)
    assert any(k.startswith("stacks.1.layers.1.ff1.") for k in old)
    other = ZipformerEncoder(40, output_dim=12, **TINY)
    for strict in (True, False):  # never a silent partial load
        with pytest.raises(ConfigError, match="migrate_toolkit_state_dict"):
            other.load_state_dict(old, strict=strict)
    with pytest.raises(ConfigError, match="migrate_toolkit_state_dict"):  # inside a model
        torch.nn.ModuleDict({"encoder": other}).load_state_dict(
            {f"encoder.{k}": v for k, v in old.items()}
        )
    migrated = zr.migrate_toolkit_state_dict(old)
    assert migrated.keys() == state.keys()
    for k in state:
        torch.testing.assert_close(migrated[k], state[k], rtol=0, atol=0, msg=k)
    other.load_state_dict(migrated, strict=True)
    imported = other.import_state_dict({**{f"encoder.{k}": v for k, v in old.items()}, "x": 1})
    assert imported.keys() == state.keys() and imported.dropped == ["x"]  # toolkit.weights hook
    two = {**{f"encoder.{k}": v for k, v in old.items()}, **{f"ema.{k}": v for k, v in old.items()}}
    whole = zr.migrate_toolkit_state_dict({**two, "x": 1})  # a model and its EMA copy
    assert whole["x"] == 1
    assert whole.keys() == {"x", *(f"encoder.{k}" for k in state), *(f"ema.{k}" for k in state)}
    assert other.import_state_dict(two) is None  # two encoders: the caller picks one


def test_migration_clamps_bypass_scales_to_the_old_eval_values():
    enc = ZipformerEncoder(40, warmup_batches=10.0, **TINY)
    with torch.no_grad():
        enc.encoder.encoders[0].layers[0].bypass.bypass_scale.fill_(0.1)
        enc.encoder.encoders[1].out_combiner.bypass_scale.fill_(1.5)
        enc.batch_count.fill_(25)  # scale_min = 0.9 - 0.7 * 25 / 50 = 0.55
    migrated = zr.migrate_toolkit_state_dict(old_layout(enc.state_dict()), warmup_batches=10.0)
    layer = migrated["encoder.encoders.0.layers.0.bypass.bypass_scale"]
    torch.testing.assert_close(layer, torch.full_like(layer, 0.55))
    assert torch.all(migrated["encoder.encoders.1.out_combiner.bypass_scale"] == 1.0)


# --------------------------------------------------------------------------- building blocks


def test_bypass_uses_its_scale_and_limits_only_gradients():
    by = zm.Bypass(3)
    with torch.no_grad():
        by.bypass_scale.copy_(torch.tensor([0.1, 0.5, 1.4]))
    x0, x = torch.zeros(1, 1, 3), torch.ones(1, 1, 3)
    for mode in (by.eval, by.train):
        mode()
        y = by(x0, x, scale_min=0.2)
        assert torch.equal(y[0, 0], by.bypass_scale.detach())  # forward: the raw scale
    (by(x0, x, scale_min=0.2) * torch.tensor([1.0, 1.0, -1.0])).sum().backward()
    # gradient descent must raise 0.1 (below 0.2) and lower 1.4 (above 1): signs flipped
    torch.testing.assert_close(by.bypass_scale.grad, torch.tensor([-1.0, 1.0, 1.0]))


def test_downsample_icefall_padding_uses_the_batch_frames():
    ds = zm.Downsample(2, padding="icefall")
    x = torch.arange(10.0).view(1, 5, 2).repeat(2, 1, 1)
    y, lens = ds(x, torch.tensor([5, 3]))
    assert lens.tolist() == [3, 2]
    torch.testing.assert_close(y[1, 1], (x[1, 2] + x[1, 3]) / 2)  # reads frame 3 (padding)
    torch.testing.assert_close(y[0, 2], x[0, 4])  # the batch's last frame repeated
    y, _ = zm.Downsample(2)(x, torch.tensor([5, 3]))
    torch.testing.assert_close(y[1, 1], x[1, 2])  # masked: the clip's last frame repeated
