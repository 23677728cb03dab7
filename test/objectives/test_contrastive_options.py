"""Options of the contrastive objective (fixed temperature, projection depth, audio pooling order,
embedding-norm regulariser) and the study's presets in egs/captionstew/conf/paper/."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from objective_checks import adam_on_one_batch

from toolkit.config import ConfigError, load_config
from toolkit.objectives.contrastive import Contrastive, embed_norm_penalty
from toolkit.registry import OBJECTIVES

PAPER = Path(__file__).resolve().parents[2] / "egs" / "captionstew" / "conf" / "paper"
TEXT = {"name": "transformer", "dim": 16, "num_layers": 1, "num_heads": 2, "ff_dim": 32}
TEXT["dropout"] = 0.0
D_ENC, VOCAB = 12, 20


def make(**kw) -> Contrastive:
    torch.manual_seed(0)
    return Contrastive(encoder_dim=D_ENC, vocab_size=VOCAB, text_encoder=TEXT, embed_dim=8, **kw)


def inputs() -> tuple[torch.Tensor, torch.Tensor, dict]:
    g = torch.Generator().manual_seed(1)
    lens = torch.tensor([6, 4, 2, 5])
    hidden = torch.randn(4, 6, D_ENC, generator=g)
    pad = torch.arange(6)[None] >= lens[:, None]
    hidden[pad] = 1e3  # garbage in padded frames: must never matter
    tokens = torch.randint(4, VOCAB, (4, 7), generator=g)
    batch = {"text_tokens": tokens, "text_lens": torch.tensor([7, 3, 5, 2])}
    return hidden, lens, batch


def test_fixed_temperature_stays_at_0_07():
    obj = make(init_temperature=0.07, learn_temperature=False)
    assert not obj.logit_scale.requires_grad
    opt = torch.optim.SGD([p for p in obj.parameters() if p.requires_grad], lr=0.5)
    hidden, lens, batch = inputs()
    for _ in range(3):
        out = obj(hidden, lens, batch)
        assert torch.isfinite(out["loss"])
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    assert obj.logit_scale.grad is None
    assert abs(float(out["temperature"]) - 0.07) < 1e-6
    learned = make(init_temperature=0.07)  # the default learns it
    learned(hidden, lens, batch)["loss"].backward()
    assert learned.logit_scale.grad is not None and float(learned.logit_scale.grad) != 0.0


@pytest.mark.parametrize("layers", [1, 2, 3])
def test_projection_depth(layers):
    obj = make(proj_layers=layers)
    linears = [m for m in obj.audio_proj if isinstance(m, torch.nn.Linear)]
    assert len(linears) == layers and len(obj.audio_proj) == 2 * layers - 1
    assert linears[0].in_features == D_ENC and linears[-1].out_features == 8
    assert len([m for m in obj.text_proj if isinstance(m, torch.nn.Linear)]) == layers
    hidden, lens, batch = inputs()
    out = obj(hidden, lens, batch)
    assert obj.embed_audio(hidden, lens).shape == (4, 8)
    assert obj.embed_text(batch["text_tokens"], batch["text_lens"]).shape == (4, 8)
    assert torch.isfinite(out["loss"])
    out["loss"].backward()
    assert all(m.weight.grad is not None for m in linears)


def test_default_head_is_the_two_layer_mlp():
    obj = make()
    kinds = [type(m).__name__ for m in obj.audio_proj]
    assert kinds == ["Linear", "GELU", "Linear"]
    assert [k for k in obj.state_dict() if "_proj." in k] == [  # checkpoint keys unchanged
        "audio_proj.0.weight",
        "audio_proj.0.bias",
        "audio_proj.2.weight",
        "audio_proj.2.bias",
        "text_proj.0.weight",
        "text_proj.0.bias",
        "text_proj.2.weight",
        "text_proj.2.bias",
    ]
    with pytest.raises(ValueError, match="proj_layers"):
        make(proj_layers=0)


def test_project_then_mean_equals_per_frame_hand_computation():
    obj = make(audio_pooling="project_then_mean")
    hidden, lens, batch = inputs()
    got = obj.embed_audio(hidden, lens)
    w1, b1 = obj.audio_proj[0].weight, obj.audio_proj[0].bias
    w2, b2 = obj.audio_proj[2].weight, obj.audio_proj[2].bias
    for i in range(len(lens)):
        frames = [w2 @ F.gelu(w1 @ hidden[i, t] + b1) + b2 for t in range(int(lens[i]))]
        ref = torch.stack(frames).mean(0)
        assert torch.allclose(got[i], ref / ref.norm(), atol=1e-5), i
    # the MLP is not linear, so the order matters
    other = make(audio_pooling="mean_then_project").embed_audio(hidden, lens)
    assert not torch.allclose(got, other, atol=1e-3)
    out = obj(hidden, lens, batch)
    assert torch.isfinite(out["loss"])
    out["loss"].backward()
    assert obj.audio_proj[0].weight.grad is not None


def test_pooling_orders_agree_for_a_linear_head():
    hidden, lens, _ = inputs()
    a = make(proj_layers=1, audio_pooling="project_then_mean").embed_audio(hidden, lens)
    b = make(proj_layers=1, audio_pooling="mean_then_project").embed_audio(hidden, lens)
    assert torch.allclose(a, b, atol=1e-5)


def test_embed_norm_regulariser_against_hand_computation():
    hidden, lens, batch = inputs()
    obj = make(embed_norm_weight=0.5)
    out = obj(hidden, lens, batch)
    a = obj.project_audio(hidden, lens)
    t = obj.project_text(batch["text_tokens"], batch["text_lens"])
    a, t = a.detach(), t.detach()
    hand_a = sum((math.sqrt(sum(float(x) ** 2 for x in row)) - 1.0) ** 2 for row in a) / len(a)
    hand_t = sum((math.sqrt(sum(float(x) ** 2 for x in row)) - 1.0) ** 2 for row in t) / len(t)
    reg = 0.5 * (hand_a + hand_t)
    assert abs(float(out["embed_norm_reg"]) - reg) < 1e-5
    base = make()(hidden, lens, batch)  # same weights (same seed), no regulariser
    assert "embed_norm_reg" not in base
    assert abs(float(out["loss"].detach()) - (float(base["loss"].detach()) + 0.5 * reg)) < 1e-5
    live = embed_norm_penalty(
        obj.project_audio(hidden, lens), obj.project_text(batch["text_tokens"], batch["text_lens"])
    )
    assert abs(float(live.detach()) - reg) < 1e-5
    live.backward()  # the regulariser alone reaches both heads
    assert obj.audio_proj[2].weight.grad.abs().sum() > 0
    assert obj.text_proj[2].weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="embed_norm_weight"):
        make(embed_norm_weight=-1.0)


def test_regulariser_pulls_norms_to_one():
    obj = make(embed_norm_weight=1.0)
    hidden, lens, batch = inputs()
    first, out = adam_on_one_batch(
        obj, hidden, lens, batch, steps=30, lr=1e-2, key="embed_norm_reg"
    )
    assert float(out["embed_norm_reg"]) < 0.25 * first


def test_option_keys_are_checked_from_yaml():
    block = {"name": "contrastive", "text_encoder": TEXT, "audio_pooling": "mean_of_projection"}
    with pytest.raises(ConfigError, match="objective.audio_pooling"):
        OBJECTIVES.check(block, "objective", {"encoder_dim", "vocab_size"})
    block = {"name": "contrastive", "text_encoder": TEXT, "proj_layers": 1}
    block.update(audio_pooling="project_then_mean", embed_norm_weight=0.1)
    OBJECTIVES.check(block, "objective", {"encoder_dim", "vocab_size"})


# ---- the study's presets ------------------------------------------------------------------


def paper_config(name: str, bert: str) -> dict:
    overrides = [f"tokenizer.path={bert}", f"objective.text_encoder.path={bert}"]
    return load_config(PAPER / f"{name}.yaml", overrides if name == "contrastive" else [])


@pytest.mark.parametrize("name", ["contrastive", "captioning"])
def test_paper_presets_pass_the_config_check(name, tmp_path):
    from toolkit.schema import check_top_level, data_config, train_config

    # the BERT folder need not exist: the config check validates keys, it does not load weights
    cfg = paper_config(name, str(tmp_path / "bert-base-uncased"))
    check_top_level(cfg)
    assert cfg["encoder"] == {"name": "zipformer", "size": "M"}
    assert cfg["optim"] == {"name": "scaled_adam", "lr": 0.045}
    assert cfg["scheduler"]["name"] == "eden"
    assert cfg["augmentation"]["name"] == "specaugment"
    assert data_config(cfg).max_clip_duration == 30.0
    assert train_config(cfg).grad_clip is None
    obj = cfg["objective"]
    if name == "contrastive":
        assert obj["embed_dim"] == 1024 and obj["init_temperature"] == 0.07
        assert obj["learn_temperature"] is False
        assert obj["text_encoder"]["name"] == "hf" and cfg["tokenizer"]["name"] == "hf"
    else:
        assert obj["label_smoothing"] == 0.1 and obj["parallel_fraction"] == 0.75
        dec = obj["decoder"]
        assert (dec["num_layers"], dec["dim"], dec["num_heads"]) == (6, 768, 8)
        assert cfg["tokenizer"]["name"] == "sentencepiece"


def test_paper_presets_build_zipformer_m_and_heads():
    """Builds (no forward) the Zipformer-M of the presets and both objectives' heads."""
    from toolkit.registry import DECODERS, ENCODERS

    cfg = paper_config("captioning", "unused")
    enc = ENCODERS.build(cfg["encoder"], key="encoder", input_dim=80)
    assert enc.output_dim == 512
    assert abs(sum(p.numel() for p in enc.parameters()) - 63_988_343) < 1000
    cap = OBJECTIVES.build(cfg["objective"], "objective", encoder_dim=512, vocab_size=5000)
    assert isinstance(cap.decoder, DECODERS.get("transformer"))
    assert len(cap.decoder.layers) == 6 and cap.decoder.output_dim == 5000
    assert cap.decoder.layers[0].self_attn.num_heads == 8
    con = load_config(PAPER / "contrastive.yaml")["objective"]
    text = {
        "name": "transformer",
        "dim": 768,
        "num_layers": 1,
        "num_heads": 8,
    }  # stands in for BERT
    con = {**con, "text_encoder": text}
    obj = OBJECTIVES.build(con, "objective", encoder_dim=512, vocab_size=100)
    assert obj.audio_proj[0].in_features == 512 and obj.audio_proj[-1].out_features == 1024
    assert obj.text_proj[0].in_features == 768 and obj.text_proj[-1].out_features == 1024
    assert not obj.logit_scale.requires_grad
    assert abs(float(1.0 / obj.scale()) - 0.07) < 1e-6
