"""Hybrid (CoCa-style) objective: weighted sum of its parts, delegation, config errors."""

from __future__ import annotations

import pytest
import torch

from toolkit.config import ConfigError
from toolkit.objectives.captioning import Captioning
from toolkit.objectives.contrastive import Contrastive
from toolkit.objectives.hybrid import Hybrid
from toolkit.registry import OBJECTIVES

D, V = 16, 24
TEXT = {"name": "transformer", "dim": 16, "num_layers": 1, "num_heads": 2, "ff_dim": 32}
DEC = {"name": "transformer", "dim": 16, "num_layers": 1, "num_heads": 2, "ff_dim": 32}


def build(**kw) -> Hybrid:
    cfg = {
        "name": "hybrid",
        "contrastive_weight": 0.7,
        "captioning_weight": 2.0,
        "contrastive": {"embed_dim": 8, "text_encoder": dict(TEXT, dropout=0.0)},
        "captioning": {"decoder": dict(DEC, dropout=0.0), "label_smoothing": 0.1},
    }
    cfg.update(kw)
    torch.manual_seed(0)
    return OBJECTIVES.build(cfg, "objective", encoder_dim=D, vocab_size=V)


def batch(b: int = 4):
    g = torch.Generator().manual_seed(0)
    lens = torch.tensor([7, 5, 3, 6][:b])
    tokens = torch.randint(4, V, (b, 6), generator=g)
    tokens[:, 0] = 2
    tl = torch.tensor([6, 4, 5, 3][:b])
    for i, n in enumerate(tl.tolist()):
        tokens[i, n - 1] = 3
        tokens[i, n:] = 0
    return torch.randn(b, 7, D, generator=g), lens, {"text_tokens": tokens, "text_lens": tl}


def test_loss_is_the_weighted_sum_of_separately_computed_parts():
    obj = build().eval()
    assert isinstance(obj.contrastive, Contrastive) and isinstance(obj.captioning, Captioning)
    enc, lens, b = batch()
    out = obj(enc, lens, b)
    # the parts built on their own, with the hybrid's weights
    con = Contrastive(D, V, dict(TEXT, dropout=0.0), embed_dim=8).eval()
    con.load_state_dict(obj.contrastive.state_dict())
    cap = Captioning(D, V, dict(DEC, dropout=0.0), label_smoothing=0.1).eval()
    cap.load_state_dict(obj.captioning.state_dict())
    c, p = con(enc, lens, b), cap(enc, lens, b)
    assert torch.allclose(out["loss"], 0.7 * c["loss"] + 2.0 * p["loss"], atol=1e-6)
    assert torch.allclose(out["loss_contrastive"], c["loss"])
    assert torch.allclose(out["loss_captioning"], p["loss"])
    assert set(out) == {
        "loss",
        "loss_contrastive",
        "loss_captioning",
        "contrastive_temperature",
        "contrastive_acc_a2t",
        "captioning_token_acc",
        "captioning_ppl",
    }
    assert torch.allclose(out["captioning_ppl"], p["ppl"])


def test_gradients_reach_both_heads_and_the_shared_encoder_output():
    obj = build().train()
    enc, lens, b = batch()
    enc.requires_grad_(True)
    obj(enc, lens, b)["loss"].backward()
    assert enc.grad is not None and enc.grad.abs().sum() > 0
    assert obj.contrastive.audio_proj[0].weight.grad is not None
    assert obj.captioning.decoder.embed.weight.grad is not None
    # zero weight: the part still runs (metrics) but contributes no gradient
    obj0 = build(captioning_weight=0.0).train()
    obj0(enc, lens, b)["loss"].backward()
    assert obj0.captioning.decoder.embed.weight.grad.abs().sum() == 0


def test_delegation_for_evaluation_and_generation():
    obj = build().eval()
    enc, lens, b = batch()
    a = obj.embed_audio(enc, lens)
    assert a.shape == (4, 8) and torch.allclose(a, obj.contrastive.embed_audio(enc, lens))
    t = obj.embed_text(b["text_tokens"], b["text_lens"])
    assert torch.allclose(t.norm(dim=-1), torch.ones(4), atol=1e-5)
    ids = obj.generate(enc, lens, method="greedy", max_len=5)
    assert ids == obj.captioning.generate(enc, lens, method="greedy", max_len=5)
    assert len(ids) == 4 and all(len(s) <= 5 for s in ids)


def test_config_errors_name_the_nested_keys():
    with pytest.raises(
        ConfigError, match=r"objective\.contrastive\.embed: unknown key for objective 'contrastive'"
    ):
        build(contrastive={"embed": 8, "text_encoder": TEXT})
    with pytest.raises(
        ConfigError,
        match=r"objective\.contrastive\.text_encoder\.name: unknown text_encoder 'lstm'; known: .*transformer",
    ):
        build(contrastive={"text_encoder": {"name": "lstm"}})
    with pytest.raises(
        ConfigError,
        match=r"objective\.captioning\.decoder\.name: unknown decoder 'rnn'; known: transformer",
    ):
        build(captioning={"decoder": {"name": "rnn"}})
    with pytest.raises(ConfigError, match=r"objective\.captioning\.decoder\.layers: unknown key"):
        build(captioning={"decoder": dict(DEC, layers=2)})
    with pytest.raises(
        ConfigError, match=r"objective\.contrastive\.text_encoder: required key missing"
    ):
        build(contrastive={})
    with pytest.raises(ConfigError, match=r"objective\.captioning_weight: must be >= 0"):
        build(captioning_weight=-1.0)
    with pytest.raises(ConfigError, match=r"objective\.contrastive: expected dict, got None"):
        build(contrastive=None)
    # the captioning block may be left out (all defaults) and a part may name another objective
    obj = build(captioning=None)
    assert obj.captioning.decoder.dim == 256
    obj = build(captioning={"name": "captioning", "decoder": DEC})
    assert isinstance(obj.captioning, Captioning)
