"""Released AudenAI/Auden CLAP models (toolkit.objectives.clap_release): a tiny CLAP directory
written the way Auden's ``examples/clap/train.py`` writes one (``ClapConfig.save_pretrained`` →
config.json, ``tokenizer.save_pretrained``, the ``ClapModel`` state dict) loads strictly into the
model built from :func:`auden_clap_config` and gives the embeddings of Auden's ``encode_audio`` /
``encode_text`` (re-implemented below from auden/models/clap/model.py). The audio tower is the
Auden-written Zipformer of ../shared/fixtures/auden_zipformer_tiny when present (its ``io.pt``
holds Auden's encoder output). With ``AUDEN_SRC=<dir holding the auden package>`` one more test
runs Auden's own ``ClapModel.from_pretrained`` on the directory."""

from __future__ import annotations

import copy
import json
import math
import os
import shutil
import sys
import types
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from fixtures import shared_fixture
from torch import nn

from toolkit.config import ConfigError
from toolkit.encoders import zipformer_release as zr
from toolkit.model import build_model, build_tokenizer
from toolkit.objectives import clap_release as cr
from toolkit.registry import ENCODERS
from toolkit.weights import load_state

transformers = pytest.importorskip(
    "transformers", reason="transformers not installed (pip install .[hf])"
)
from safetensors.torch import load_file, save_file  # noqa: E402

FIXTURE = shared_fixture("auden_zipformer_tiny")
TINY_ZIPFORMER = {  # = the fixture's config.json (an Auden ZipformerConfig.to_dict())
    "model_type": "zipformer",
    "feature_dim": 80,
    "output_downsampling_factor": 2,
    "num_encoder_layers": [1, 1],
    "downsampling_factor": [1, 2],
    "encoder_dim": [48, 64],
    "feedforward_dim": [96, 128],
    "warmup_batches": 4000.0,
    "dropout": None,
    "num_heads": [2, 2],
    "query_head_dim": [16],
    "value_head_dim": [8],
    "pos_head_dim": [4],
    "pos_dim": 16,
    "encoder_unmasked_dim": [32, 48],
    "cnn_module_kernel": [31, 15],
    "causal": False,
    "chunk_size": [-1],
    "left_context_frames": [-1],
}
WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ","]
WORDS += "a the dog cat bird barks meows sings music plays loud soft quiet rain falls".split()
CAPTIONS = [
    "a dog barks.",
    "rain falls",
    "the bird sings , a cat meows",
    " ".join(["music plays loud"] * 12),  # 36 words + [CLS]/[SEP]: truncated to 30 ids
]
EMB, TEMP, TOL = 24, 0.05, 1e-5


def has_fixture() -> bool:
    return (FIXTURE / "io.pt").is_file() and (FIXTURE / "model" / "model.safetensors").is_file()


def audio_tower() -> tuple[dict, dict[str, torch.Tensor]]:
    """``(ZipformerConfig dict, Auden encoder state dict)``: the Auden-written fixture, else the
    toolkit's tiny Zipformer (icefall's names = Auden's) with ``model_batch_count``."""
    if has_fixture():
        config = json.loads((FIXTURE / "model" / "config.json").read_text())
        return config, load_file(FIXTURE / "model" / "model.safetensors")
    torch.manual_seed(3)
    enc = ENCODERS.build(zr.auden_encoder_config(TINY_ZIPFORMER), key="encoder", input_dim=80)
    state = {k: v for k, v in enc.state_dict().items() if k != "batch_count"}
    state["model_batch_count"] = torch.tensor(100000.0)
    return dict(TINY_ZIPFORMER), state


def tiny_bert() -> nn.Module:
    """A seeded 1-layer, 32-dim BERT without pooler (as ClapModel builds it)."""
    cfg = transformers.BertConfig(
        vocab_size=len(WORDS),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=40,
    )
    torch.manual_seed(0)
    model = transformers.BertModel(cfg, add_pooling_layer=False).eval()
    return model


def write_tokenizer(folder: Path) -> None:
    """``tokenizer.save_pretrained(folder)`` of a BertTokenizer over :data:`WORDS`."""
    folder.mkdir(parents=True, exist_ok=True)
    vocab = folder / "_vocab_src.txt"
    vocab.write_text("\n".join(WORDS) + "\n")
    transformers.BertTokenizer(str(vocab)).save_pretrained(str(folder))
    vocab.unlink()


def write_clap_dir(folder: Path) -> Path:
    """An Auden CLAP model directory: config.json as ``ClapConfig.to_dict()`` writes it, the
    tokenizer beside it, ``model.safetensors`` = ``ClapModel.state_dict()``."""
    audio_cfg, audio_state = audio_tower()
    bert = tiny_bert()
    torch.manual_seed(1)
    audio_proj = nn.Sequential(nn.Linear(64, EMB), nn.ReLU(), nn.Linear(EMB, EMB))
    text_proj = nn.Sequential(nn.Linear(32, EMB), nn.ReLU(), nn.Linear(EMB, EMB))
    state = {f"text_encoder.{k}": v for k, v in bert.state_dict().items()}
    state.update({f"audio_encoder.{k}": v for k, v in audio_state.items()})
    state.update({f"text_proj.{k}": v for k, v in text_proj.state_dict().items()})
    state.update({f"audio_proj.{k}": v for k, v in audio_proj.state_dict().items()})
    config = {  # ClapConfig.to_dict(): attribute order of ClapConfig.__init__, then model_type
        "audio_encoder_config": audio_cfg,
        "text_encoder_config": bert.config.to_diff_dict(),
        "loss": "info-nce",
        "shared_emb_dim": EMB,
        "temp": TEMP,
        "embed_reg": True,
        "model_type": "clap",
    }
    write_tokenizer(folder)
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "model.safetensors"))
    return folder


@pytest.fixture(scope="module")
def clap_dir(tmp_path_factory) -> Path:
    return write_clap_dir(tmp_path_factory.mktemp("auden_clap"))


def read(folder: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    return json.loads((folder / "config.json").read_text()), load_file(folder / "model.safetensors")


def load_toolkit(folder: Path, text_tower: Path | None = None):
    """``(model, tokenizer, report)``: built from auden_clap_config, loaded strictly."""
    config, raw = read(folder)
    cfg = cr.auden_clap_config(config, folder, text_tower)
    tok = build_tokenizer(cfg)
    model = build_model(cfg, tok, init_weights=False).eval()
    state = dict(cr.clap_state_dict(raw, config))
    # the fbank frontend's constants are not in a released checkpoint (as for Auden encoders)
    state.update({f"frontend.{k}": v for k, v in model.frontend.state_dict().items()})
    return model, tok, load_state(model, state, folder)


# --------------------------------------------------------------------------- Auden's forward


def auden_encode_audio(
    encoder_out: torch.Tensor, lens: torch.Tensor, audio_proj: nn.Module
) -> torch.Tensor:
    """ClapModel.encode_audio after the audio encoder: project frames, masked mean, normalise."""
    feats = audio_proj(encoder_out)
    pad = torch.arange(feats.size(1))[None, :] >= lens[:, None]  # make_pad_mask
    feats = feats.masked_fill(pad.unsqueeze(-1), 0.0)
    counts = (~pad).sum(dim=1).clamp(min=1).unsqueeze(-1)
    return F.normalize(feats.sum(dim=1) / counts, dim=-1)


def auden_text_model(folder: Path):
    """``(text_encoder, text_proj, tokenizer)`` as ClapModel builds and loads them."""
    config, raw = read(folder)
    hf_cfg = transformers.AutoConfig.for_model(**config["text_encoder_config"])
    text_encoder = transformers.AutoModel.from_config(hf_cfg, add_pooling_layer=False)
    text_encoder.load_state_dict(
        {k[len("text_encoder.") :]: v for k, v in raw.items() if k.startswith("text_encoder.")}
    )
    emb = config["shared_emb_dim"]
    text_proj = nn.Sequential(nn.Linear(hf_cfg.hidden_size, emb), nn.ReLU(), nn.Linear(emb, emb))
    text_proj.load_state_dict(
        {k[len("text_proj.") :]: v for k, v in raw.items() if k.startswith("text_proj.")}
    )
    tok = transformers.AutoTokenizer.from_pretrained(str(folder))
    return text_encoder.eval(), text_proj, tok


def auden_encode_text(folder: Path, texts: list[str]) -> torch.Tensor:
    """ClapModel.encode_text: tokenise (longest padding, max_length 30), [CLS], project, normalise."""
    text_encoder, text_proj, tok = auden_text_model(folder)
    enc = tok(texts, padding="longest", truncation=True, max_length=30, return_tensors="pt")
    out = text_encoder(input_ids=enc.input_ids, attention_mask=enc.attention_mask)[0]
    return F.normalize(text_proj(out[:, 0, :]), dim=-1)


def auden_audio_proj(folder: Path) -> nn.Module:
    _, raw = read(folder)
    w = {k[len("audio_proj.") :]: v for k, v in raw.items() if k.startswith("audio_proj.")}
    proj = nn.Sequential(nn.Linear(64, EMB), nn.ReLU(), nn.Linear(EMB, EMB))
    proj.load_state_dict(w)
    return proj


def toolkit_text(model, tok, texts: list[str]) -> torch.Tensor:
    ids, lens = tok.encode_batch(texts)
    return model.objective.embed_text(ids, lens)


# --------------------------------------------------------------------------- tests


def test_is_clap_config_and_config_sections(clap_dir):
    config, _ = read(clap_dir)
    assert cr.is_clap_config(config)
    assert not cr.is_clap_config(config["audio_encoder_config"]) and not cr.is_clap_config([])
    cfg = cr.auden_clap_config(config, clap_dir)
    assert set(cfg) == {"frontend", "encoder", "objective", "tokenizer"}
    assert cfg["encoder"] == zr.auden_encoder_config(config["audio_encoder_config"])
    assert cfg["frontend"] == {"name": "fbank", "num_mel_bins": 80}
    obj = cfg["objective"]
    assert obj["name"] == "contrastive" and obj["embed_dim"] == EMB
    assert obj["init_temperature"] == TEMP and obj["learn_temperature"] is False
    assert obj["proj_activation"] == "relu" and obj["audio_pooling"] == "project_then_mean"
    assert obj["text_encoder"]["name"] == "hf_config"
    assert obj["text_encoder"]["config"]["model_type"] == "bert"
    assert cfg["tokenizer"] == {"name": "hf", "path": str(clap_dir.resolve()), "max_len": 30}


def test_state_dict_loads_strictly_with_nothing_left_over(clap_dir):
    config, raw = read(clap_dir)
    state = cr.clap_state_dict(raw, config)
    assert state.dropped == ["audio_encoder.model_batch_count"] and state.prefix == ""
    assert len(state) == len(raw) + 1  # + batch_count, + logit_scale, - model_batch_count
    assert int(state["encoder.batch_count"]) == int(raw["audio_encoder.model_batch_count"])
    assert math.isclose(float(state["objective.logit_scale"]), math.log(1 / TEMP), rel_tol=1e-6)
    model, _, report = load_toolkit(clap_dir)
    assert report.ok and not report.missing and not report.unexpected and not report.mismatched
    assert len(report.loaded) == len(model.state_dict())
    assert math.isclose(float(model.objective.scale()), 1 / TEMP, rel_tol=1e-5)
    assert not model.objective.logit_scale.requires_grad  # Auden's temperature is fixed
    assert isinstance(model.objective.audio_proj[1], nn.ReLU)
    assert isinstance(model.objective.text_proj[1], nn.ReLU)
    assert model.objective.text_encoder.model.pooler is None


@pytest.mark.skipif(not has_fixture(), reason=f"release fixture not found at {FIXTURE}")
def test_audio_embeddings_match_auden(clap_dir):
    """Auden-written Zipformer weights + Auden's encoder output (io.pt) through Auden's head."""
    io = torch.load(FIXTURE / "io.pt", weights_only=True)
    model, _, _ = load_toolkit(clap_dir)
    with torch.no_grad():
        hidden, lens = model.encoder(io["x"].float(), io["x_lens"])
        got = model.objective.embed_audio(hidden, lens)
        want = auden_encode_audio(io["out"], io["out_lens"], auden_audio_proj(clap_dir))
    assert torch.equal(lens, io["out_lens"])
    assert got.shape == (2, EMB)
    assert (got - want).abs().max() <= TOL


def test_audio_head_matches_auden_on_padded_frames(clap_dir):
    """The head alone (project every frame, mean of the valid ones), whatever the encoder."""
    model, _, _ = load_toolkit(clap_dir)
    torch.manual_seed(5)
    hidden, lens = torch.randn(3, 11, 64), torch.tensor([11, 4, 7])
    with torch.no_grad():
        got = model.objective.embed_audio(hidden, lens)
        want = auden_encode_audio(hidden, lens, auden_audio_proj(clap_dir))
    assert (got - want).abs().max() <= TOL


def test_text_embeddings_match_auden_including_truncation(clap_dir):
    model, tok, _ = load_toolkit(clap_dir)
    ids, lens = tok.encode_batch(CAPTIONS)
    assert int(lens.max()) == 30  # Auden's max_length=30
    with torch.no_grad():
        got = toolkit_text(model, tok, CAPTIONS)
        want = auden_encode_text(clap_dir, CAPTIONS)
    assert got.shape == (len(CAPTIONS), EMB)
    assert (got - want).abs().max() <= TOL


def test_text_tower_argument_uses_that_folder(clap_dir, tmp_path):
    """A CLAP dir without tokenizer files + text_tower=<local BERT folder>: same embeddings."""
    bare = tmp_path / "clap"
    bare.mkdir()
    for f in ("config.json", "model.safetensors"):
        shutil.copy(clap_dir / f, bare / f)
    bert_dir = tmp_path / "bert"
    bert = tiny_bert()
    bert.save_pretrained(str(bert_dir))
    write_tokenizer(bert_dir)
    cfg = cr.auden_clap_config(read(bare)[0], bare, text_tower=bert_dir)
    assert cfg["objective"]["text_encoder"] == {
        "name": "hf",
        "path": str(bert_dir.resolve()),
        "pooling": "cls",
    }
    assert cfg["tokenizer"]["path"] == str(bert_dir.resolve())
    model, tok, report = load_toolkit(bare, text_tower=bert_dir)
    assert report.ok
    with torch.no_grad():
        got = toolkit_text(model, tok, CAPTIONS)
        want = auden_encode_text(clap_dir, CAPTIONS)
    assert (got - want).abs().max() <= TOL


def test_missing_text_tower_is_a_clear_error(clap_dir, tmp_path):
    config, _ = read(clap_dir)
    bare = tmp_path / "clap"
    bare.mkdir()
    shutil.copy(clap_dir / "config.json", bare / "config.json")
    with pytest.raises(ConfigError) as e:
        cr.auden_clap_config(config, bare)
    msg = str(e.value)
    for needle in (
        str(bare),
        "tokenizer_config.json",
        "vocab.txt",
        "tokenizer.json",
        "text_tower=",
    ):
        assert needle in msg, msg
    no_text = {k: v for k, v in config.items() if k != "text_encoder_config"}
    with pytest.raises(ConfigError, match="text_encoder_config.*text_tower="):
        cr.auden_clap_config(no_text, clap_dir)
    with pytest.raises(ConfigError, match="not a local Hugging Face model folder"):
        cr.auden_clap_config(config, clap_dir, text_tower=tmp_path / "nowhere")


def test_config_errors():
    config = {"model_type": "clap", "audio_encoder_config": {"model_type": "whisper-encoder"}}
    with pytest.raises(ConfigError, match="whisper-encoder.*only Zipformer"):
        cr.auden_clap_config(config, Path("."))
    with pytest.raises(ConfigError, match="is not 'clap'"):
        cr.auden_clap_config({"model_type": "zipformer"}, Path("."))


def test_state_dict_variants_prefix_old_buffers_and_unknown_keys(clap_dir):
    config, raw = read(clap_dir)
    ddp = {f"module.{k}": v for k, v in raw.items()}
    ddp["module.text_encoder.embeddings.position_ids"] = torch.arange(40)[None]
    ddp["module.text_encoder.pooler.dense.weight"] = torch.zeros(32, 32)
    state = cr.clap_state_dict(ddp, config)
    assert state.prefix == "module."
    assert sorted(state.dropped) == [
        "module.audio_encoder.model_batch_count",
        "module.text_encoder.embeddings.position_ids",
        "module.text_encoder.pooler.dense.weight",
    ]
    assert set(state) == set(cr.clap_state_dict(raw, config))
    # without the config: Auden's default temperature
    assert math.isclose(float(cr.clap_state_dict(raw)["objective.logit_scale"]), math.log(1 / 0.07))
    with pytest.raises(ConfigError, match="unknown keys.*logit_bias"):
        cr.clap_state_dict({**raw, "logit_bias": torch.zeros(())}, config)
    encoder_only = {k[len("audio_encoder.") :]: v for k, v in raw.items() if "audio_encoder." in k}
    with pytest.raises(ConfigError, match="not 'audio_encoder.'"):
        cr.clap_state_dict(encoder_only, config)


def test_loaded_model_trains_with_the_fixed_temperature(clap_dir):
    model, tok, _ = load_toolkit(clap_dir)
    model.train()
    ids, lens = tok.encode_batch(CAPTIONS[:2])
    audio = torch.randn(2, 16000)
    out = model({"audio": audio, "audio_lens": torch.tensor([16000, 12000]),
                 "text_tokens": ids, "text_lens": lens})  # fmt: skip
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and math.isclose(
        float(out["temperature"]), TEMP, rel_tol=1e-5
    )
    assert model.objective.audio_proj[0].weight.grad is not None
    assert model.objective.text_encoder.model.embeddings.word_embeddings.weight.grad is not None
    assert model.objective.logit_scale.grad is None


# --------------------------------------------------------------------------- Auden's own code


@pytest.mark.skipif(not os.environ.get("AUDEN_SRC"), reason="AUDEN_SRC (Auden's source) not set")
def test_auden_clap_model_gives_the_same_embeddings(clap_dir, monkeypatch):
    """Auden's ClapModel.from_pretrained on the directory (k2 replaced by pure-torch Swoosh, as
    in the fixture's generate.py): the same audio and text embeddings and similarities."""
    k2 = types.ModuleType("k2")

    def swoosh_l(x: torch.Tensor) -> torch.Tensor:
        return torch.logaddexp(torch.zeros_like(x), x - 4.0) - 0.08 * x - 0.035

    def swoosh_r(x: torch.Tensor) -> torch.Tensor:
        return torch.logaddexp(torch.zeros_like(x), x - 1.0) - 0.08 * x - 0.313261687

    k2.swoosh_l_forward = k2.swoosh_l = swoosh_l
    k2.swoosh_r_forward = k2.swoosh_r = swoosh_r
    monkeypatch.setitem(sys.modules, "k2", k2)
    monkeypatch.syspath_prepend(os.environ["AUDEN_SRC"])
    from auden.auto.auto_model import AutoModel

    ref = AutoModel.from_pretrained(str(clap_dir)).eval()
    assert type(ref).__name__ == "ClapModel" and ref.temp == TEMP
    model, tok, _ = load_toolkit(clap_dir)
    g = torch.Generator().manual_seed(2)
    x, x_lens = torch.randn(2, 300, 80, generator=g), torch.tensor([300, 217])
    x[1, 217:] = 0.0
    with torch.no_grad():
        ref.audio_encoder.set_batch_count()
        want_a, want_t = ref.encode_audio(x, x_lens), ref.encode_text(copy.copy(CAPTIONS))
        got_a = model.objective.embed_audio(*model.encoder(x, x_lens))
        got_t = toolkit_text(model, tok, CAPTIONS)
        sim_a2t, _ = ref.generate((x, x_lens), CAPTIONS)
    assert (got_a - want_a).abs().max() <= TOL
    assert (got_t - want_t).abs().max() <= TOL
    assert (got_a @ got_t.T - sim_a2t).abs().max() <= 2 * TOL


def test_toolkit_load_opens_a_clap_dir(clap_dir):
    """The run loader: toolkit.load(CLAP dir) gives Auden's text embeddings and a joint space
    (open_run dispatches to release_run, kind auden-clap)."""
    import toolkit
    from toolkit.runs import open_run

    run = open_run(clap_dir)
    assert run.kind == "auden-clap" and run.config["objective"]["name"] == "contrastive"
    m = toolkit.load(clap_dir)
    assert m.has_joint_space and run.report is None
    with torch.no_grad():
        want = auden_encode_text(clap_dir, CAPTIONS)
    assert (m.embed_text(CAPTIONS) - want).abs().max() <= TOL
    assert m.run.report.ok  # strict load: nothing missing, unexpected or mismatched
    emb = m.embed_audio(torch.zeros(16000).uniform_(-0.1, 0.1), sampling_rate=16000)
    assert emb.shape == (1, EMB) and abs(float(emb.norm()) - 1) < 1e-5
