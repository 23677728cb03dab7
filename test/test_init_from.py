"""encoder.init_from: a toolkit checkpoint (or a plain state_dict) initialises a new model's
encoder; key_map, strict shape checks, clear errors, config wiring."""

from __future__ import annotations

import logging
import re

import pytest
import torch

from toolkit.config import ConfigError, load_config
from toolkit.model import build_model
from toolkit.schema import check_top_level
from toolkit.train.checkpoint import save_atomic, save_checkpoint
from toolkit.weights import load_init, map_keys, read_state_dict

TOKENIZER = type("T", (), {"vocab_size": 12})()
ENC = {
    "name": "transformer",
    "dim": 16,
    "num_layers": 1,
    "num_heads": 2,
    "ff_dim": 32,
    "subsampling_channels": 4,
}
OBJ = {
    "name": "contrastive",
    "embed_dim": 8,
    "text_encoder": {
        "name": "transformer",
        "dim": 16,
        "num_layers": 1,
        "num_heads": 2,
        "ff_dim": 32,
    },
}


def config(**encoder) -> dict:
    return {"frontend": {"name": "fbank"}, "encoder": {**ENC, **encoder}, "objective": OBJ}


def equal_encoders(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_init_from_trainer_checkpoint(tmp_path, caplog):
    torch.manual_seed(0)
    a = build_model(config(), TOKENIZER)
    path = save_checkpoint(tmp_path / "ckpt", 5, {"model": a.state_dict(), "step": 5}, keep_last=2)
    torch.manual_seed(1)
    assert not equal_encoders(build_model(config(), TOKENIZER).encoder, a.encoder)
    with caplog.at_level(logging.INFO, logger="toolkit.weights"):
        b = build_model(config(init_from=str(path)), TOKENIZER)
    assert equal_encoders(b.encoder, a.encoder)
    assert not torch.equal(b.objective.audio_proj[0].weight, a.objective.audio_proj[0].weight)
    n = len(a.encoder.state_dict())
    assert f"{n} loaded, 0 missing, 0 unexpected, 0 shape mismatch" in caplog.text
    # init_weights=False (a trained checkpoint is loaded next): the file is not read
    c = build_model(config(init_from=str(tmp_path / "gone.pt")), TOKENIZER, init_weights=False)
    assert not equal_encoders(c.encoder, a.encoder)


def test_plain_state_dict_and_key_map(tmp_path):
    torch.manual_seed(0)
    a = build_model(config(), TOKENIZER)
    # a plain encoder state_dict without the "encoder." prefix, saved under other names
    renamed = {k.replace("layers.", "blocks."): v for k, v in a.encoder.state_dict().items()}
    torch.save(renamed, tmp_path / "enc.pt")
    with pytest.raises(ConfigError, match=r"missing: layers\.0\..*unexpected: blocks\.0\."):
        build_model(config(init_from=str(tmp_path / "enc.pt")), TOKENIZER)
    b = build_model(
        config(init_from=str(tmp_path / "enc.pt"), init_key_map={"blocks.": "layers."}), TOKENIZER
    )
    assert equal_encoders(b.encoder, a.encoder)
    state, dropped, used = map_keys({"encoder.x.w": torch.ones(1), "objective.y": torch.ones(1)})
    assert list(state) == ["x.w"] and dropped == 1 and used


def test_shape_mismatch_strict_and_non_strict(tmp_path):
    torch.manual_seed(0)
    a = build_model(config(ff_dim=64), TOKENIZER)
    save_atomic({"model": a.state_dict()}, tmp_path / "model.pt")
    cfg = config(init_from=str(tmp_path / "model.pt"))
    with pytest.raises(ConfigError) as e:
        build_model(cfg, TOKENIZER)
    msg = str(e.value)
    assert "encoder.init_from: " in msg and str(tmp_path / "model.pt") in msg
    assert "layers.0.ff.0.weight (checkpoint (64, 16) vs model (32, 16))" in msg
    torch.manual_seed(3)
    ref = build_model(config(), TOKENIZER)
    torch.manual_seed(3)
    b = build_model(config(init_from=str(tmp_path / "model.pt"), init_strict=False), TOKENIZER)
    sa, sb, sr = a.encoder.state_dict(), b.encoder.state_dict(), ref.encoder.state_dict()
    assert torch.equal(sb["layers.0.attn.qkv.weight"], sa["layers.0.attn.qkv.weight"])
    assert torch.equal(sb["layers.0.ff.0.weight"], sr["layers.0.ff.0.weight"])  # kept its init
    report = load_init(b.encoder, tmp_path / "model.pt", strict=False)
    assert [k for k, _, _ in report.mismatched] == [
        "layers.0.ff.0.weight",
        "layers.0.ff.0.bias",
        "layers.0.ff.3.weight",
    ]
    assert re.search(
        r"\n  mismatch +layers\.0\.ff\.0\.weight +\(64, 16\) +\(32, 16\)", report.table()
    )


def test_unknown_or_bad_file(tmp_path):
    with pytest.raises(
        ConfigError, match=r"encoder\.init_from: cannot initialise from .*nope\.pt: no such file"
    ):
        build_model(config(init_from=str(tmp_path / "nope.pt")), TOKENIZER)
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    with pytest.raises(ConfigError, match="cannot read .*junk.pt: .*not a checkpoint"):
        read_state_dict(tmp_path / "junk.pt")
    torch.save({"optimizer": {"lr": 1}}, tmp_path / "opt.pt")
    with pytest.raises(ConfigError, match="holds no model state dict"):
        read_state_dict(tmp_path / "opt.pt")


def test_config_check_accepts_and_checks_init_keys(tmp_path):
    p = tmp_path / "a.yaml"
    p.write_text(
        "frontend: {name: fbank}\n"
        "encoder:\n  name: transformer\n  init_from: x.pt\n  init_key_map: {a.: b.}\n"
        "  init_strict: false\n"
        "objective: {name: contrastive, text_encoder: {name: transformer}}\n"
    )
    check_top_level(load_config(p))  # init keys are not encoder constructor keys: accepted
    with pytest.raises(ConfigError, match=r"command line: encoder\.init_strict: expected bool"):
        check_top_level(load_config(p, ["encoder.init_strict=maybe"]))
    with pytest.raises(ConfigError, match=r"encoder\.init_fro: unknown key"):
        check_top_level(load_config(p, ["encoder.init_fro=y.pt"]))
