"""Released checkpoints through the run loader: an Auden model dir and an icefall checkpoint
(the reference fixture written by Auden's own code) load with toolkit.load / open_run /
load_encoder / encoder.init_from and reproduce the reference output; wrong inputs fail loudly."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from fixtures import shared_fixture

import toolkit
from toolkit.config import ConfigError
from toolkit.inference import load_encoder
from toolkit.runs import export_run, open_run
from toolkit.weights import CheckpointError

TINY = shared_fixture("auden_zipformer_tiny")
pytestmark = pytest.mark.skipif(not TINY.is_dir(), reason=f"fixture {TINY} not present")


@pytest.fixture(scope="module")
def io():
    return torch.load(TINY / "io.pt", weights_only=True)


def reproduce(encoder: torch.nn.Module, io: dict) -> None:
    encoder.eval()
    with torch.no_grad():
        out, lens = encoder(io["x"], io["x_lens"])
    assert torch.equal(lens.long(), io["out_lens"].long())
    for b, n in enumerate(lens.tolist()):  # valid frames (icefall leaves padding unmasked)
        assert (out[b, :n] - io["out"][b, :n]).abs().max().item() <= 1e-5


def test_auden_dir_reproduces_the_reference(io):
    run = open_run(TINY / "model")
    assert run.kind == "auden"
    _, encoder, report = run.audio_modules()
    assert report.ok and not report.missing
    reproduce(encoder, io)
    m = toolkit.load(TINY / "model")  # the model API: encoder-only, encoder space
    assert m.objective is None and not m.has_joint_space
    emb = m.embed_audio(torch.zeros(16000).uniform_(-0.1, 0.1), sampling_rate=16000)
    assert emb.shape == (1, 64)
    with pytest.raises(ConfigError, match="no joint"):
        m.embed_audio(torch.zeros(16000), sampling_rate=16000, space="joint")


def test_icefall_checkpoint_with_hparams_reproduces_the_reference(io):
    run = open_run(TINY / "icefall_pretrained.pt", icefall_hparams=TINY / "icefall_hparams.yaml")
    assert run.kind == "icefall"
    _, encoder, _ = run.audio_modules()
    reproduce(encoder, io)
    enc = load_encoder(TINY / "model")  # the embedding API takes the release dir too
    assert enc.output_dim == 64


def test_export_of_a_released_model_round_trips(tmp_path, io):
    out = export_run(open_run(TINY / "model"), tmp_path / "exported")
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()
    _, encoder, _ = open_run(out).audio_modules()
    reproduce(encoder, io)


def test_init_from_takes_a_release_dir_and_an_icefall_file(io):
    from toolkit.encoders.zipformer_release import auden_encoder_config
    from toolkit.registry import ENCODERS
    from toolkit.weights import load_init

    block = auden_encoder_config(json.loads((TINY / "model" / "config.json").read_text()))
    for path in (TINY / "model", TINY / "icefall_pretrained.pt"):
        encoder = ENCODERS.build(block, key="encoder", input_dim=80)
        report = load_init(encoder, path)
        assert report.ok and report.imported, report.table()
        reproduce(encoder, io)


def wrong_copy(tmp_path: Path, name: str) -> Path:
    d = tmp_path / name
    shutil.copytree(TINY / "model", d)
    return d


def test_wrong_checkpoints_fail_loudly(tmp_path):
    # another preset: the config says wider stacks than the weights
    other = wrong_copy(tmp_path, "other_preset")
    cfg = json.loads((other / "config.json").read_text())
    cfg["encoder_dim"] = [64, 96]
    (other / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match=r"model.safetensors.*shape mismatch.*encoder\."):
        open_run(other).audio_modules()
    # a truncated weights file
    cut = wrong_copy(tmp_path, "truncated")
    data = (cut / "model.safetensors").read_bytes()
    (cut / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ConfigError, match=r"truncated.*model.safetensors"):
        open_run(cut).audio_modules()
    # a directory without weights
    empty = wrong_copy(tmp_path, "no_weights")
    (empty / "model.safetensors").unlink()
    with pytest.raises(ConfigError, match=r"no_weights: no weights file \(looked for"):
        open_run(empty).audio_modules()
    # a CLAP dir whose text tower's tokenizer files are not there: the files and the fix named
    clap = wrong_copy(tmp_path, "clap")
    cfg = json.loads((clap / "config.json").read_text())
    bert = {"model_type": "bert", "hidden_size": 32, "num_hidden_layers": 1,
            "num_attention_heads": 2, "intermediate_size": 64, "vocab_size": 100}  # fmt: skip
    clap_cfg = {"model_type": "clap", "audio_encoder_config": cfg, "text_encoder_config": bert}
    (clap / "config.json").write_text(json.dumps(clap_cfg))
    with pytest.raises(ConfigError, match=r"(?s)clap.*tokenizer.*text_tower"):
        open_run(clap)
    # an icefall checkpoint without its hyper-parameters: named, with the fix
    with pytest.raises((ConfigError, CheckpointError), match="icefall_pretrained.pt"):
        open_run(TINY / "icefall_pretrained.pt")


def test_continue_pretraining_from_a_released_encoder(tone_data, io):
    """toolkit.bin.train --init-model with an encoder-only release: the release's frontend and
    encoder replace the recipe's, its weights load, the objective starts fresh."""
    from toolkit.config import load_config
    from toolkit.model import build_model, build_tokenizer
    from toolkit.runs import continue_from, load_into

    recipe = load_config(Path(__file__).resolve().parent.parent / "egs/demo/conf/pretrain.yaml")
    recipe["tokenizer"]["model"] = str(tone_data["spm"])
    run = open_run(TINY / "model")
    cfg = continue_from(run, recipe)
    assert cfg["encoder"]["name"] == "zipformer" and "stats_file" not in cfg["frontend"]
    assert cfg["objective"] == recipe["objective"]  # the release has none: the recipe's
    model = build_model(cfg, build_tokenizer(cfg), init_weights=False)
    report = load_into(run, model)
    assert not any(k.startswith("encoder.") for k in report.missing)
    assert report.missing and all(k.startswith(("objective.", "frontend.")) for k in report.missing)
    reproduce(model.encoder, io)
