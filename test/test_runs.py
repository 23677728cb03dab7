"""toolkit.runs: a run keeps its own files, opens from anywhere, and never reads the cwd's."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures import tiny_config
from lhotse import CutSet

from toolkit.bin.evaluate import check_leakage
from toolkit.config import ConfigError
from toolkit.hear import get_scene_embeddings, load_model
from toolkit.inference import load_encoder
from toolkit.runs import RUN_FILE, keep_files_with_run, open_run

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "egs" / "demo" / "conf" / "pretrain.yaml"


def test_keep_files_with_run_copies_stats_and_tokenizer(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    torch.save({"mean": torch.ones(3), "std": torch.ones(3)}, tmp_path / "data" / "stats.pt")
    (tmp_path / "data" / "spm.model").write_bytes(b"spm")
    exp = Path("exp") / "run"
    cfg = {
        "frontend": {"name": "fbank", "stats_file": "data/stats.pt"},
        "tokenizer": {"name": "sentencepiece", "model": "data/spm.model"},
    }
    files = keep_files_with_run(cfg, exp)
    assert files == {"frontend.stats_file": "stats.pt", "tokenizer.model": "spm.model"}
    assert cfg["frontend"]["stats_file"] == str(exp / "stats.pt")
    assert cfg["tokenizer"]["model"] == str(exp / "spm.model")
    assert (exp / "spm.model").read_bytes() == b"spm"
    info = json.loads((exp / RUN_FILE).read_text())
    assert info["origin"] == str(tmp_path.resolve()) and info["files"] == files
    assert keep_files_with_run(cfg, exp) == files  # resuming with the copies: same paths
    assert cfg["frontend"]["stats_file"] == str(exp / "stats.pt")
    none = {"frontend": {"name": "fbank", "stats_file": None}}
    assert keep_files_with_run(none, tmp_path / "other") == {}


@pytest.fixture(scope="module")
def recipe_run(tone_data, tmp_path_factory) -> dict:
    """A tiny run trained from a recipe folder with relative paths (data/..., exp/x), its
    embeddings of two files, then the run moved away and the recipe folder deleted."""
    base = tmp_path_factory.mktemp("runs")
    recipe = base / "recipe"
    (recipe / "data").mkdir(parents=True)
    shutil.copy(tone_data["spm"], recipe / "data" / "spm.model")
    shutil.copy(tone_data["train"], recipe / "data" / "cuts_train.jsonl.gz")
    stats = {"mean": torch.linspace(-1, 1, 80), "std": torch.full((80,), 2.0)}
    torch.save(stats, recipe / "data" / "fbank_stats.pt")
    over = tiny_config(
        recipe,
        Path("data/cuts_train.jsonl.gz"),
        Path("data/spm.model"),
        **{
            "train.max_steps": 3,
            "train.save_every": 3,
            "frontend.stats_file": "data/fbank_stats.pt",
        },
    )
    cmd = [sys.executable, "-m", "toolkit.bin.train", "-c", str(CONF), "--exp-dir", "exp/x"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd + over, env=env, capture_output=True, text=True, cwd=recipe)
    assert r.returncode == 0, r.stderr[-2000:]
    files = sorted((tone_data["root"] / "audio").glob("dev*.wav"))[:3]
    ref = load_encoder(recipe / "exp" / "x").embed_files(files, progress=False).pooled()
    # leakage: the run's pretraining manifest is found from its origin, whatever the cwd
    run = open_run(recipe / "exp" / "x")
    sources, missing = run.pretraining_sources()
    assert missing == [] and sources == str((recipe / "data" / "cuts_train.jsonl.gz").resolve())
    moved = base / "elsewhere" / "model"
    shutil.copytree(recipe / "exp" / "x", moved)
    shutil.rmtree(recipe)
    return {"moved": moved, "files": files, "ref": ref, "base": base}


def decoy_cwd(base: Path) -> Path:
    """A cwd holding files under the run's original relative names, all different."""
    cwd = base / "decoy"
    (cwd / "data").mkdir(parents=True, exist_ok=True)
    (cwd / "exp" / "x").mkdir(parents=True, exist_ok=True)
    other = {"mean": torch.full((80,), 5.0), "std": torch.full((80,), 0.1)}
    torch.save(other, cwd / "data" / "fbank_stats.pt")
    torch.save(other, cwd / "exp" / "x" / "fbank_stats.pt")
    (cwd / "data" / "spm.model").write_bytes(b"not a tokenizer")
    return cwd


def test_a_moved_run_loads_with_its_own_files(recipe_run, monkeypatch):
    monkeypatch.chdir(decoy_cwd(recipe_run["base"]))
    enc = load_encoder(recipe_run["moved"])
    got = enc.embed_files(recipe_run["files"], progress=False).pooled()
    torch.testing.assert_close(got, recipe_run["ref"], atol=1e-6, rtol=0)
    run = open_run(recipe_run["moved"])
    assert Path(run.config["frontend"]["stats_file"]).parent == recipe_run["moved"]
    assert Path(run.config["tokenizer"]["model"]) == recipe_run["moved"] / "spm.model"
    model = run.model()  # the tokenizer is the run's copy (the cwd's is garbage)
    assert not model.training and run.report is not None and run.report.ok
    # the HEAR API: the same vectors as the embedding API (pad_end off for the comparison)
    hear = load_model(str(recipe_run["moved"]), pad_end=False)
    import soundfile as sf

    audio = np.stack([sf.read(f, dtype="float32")[0][:8000] for f in recipe_run["files"]])
    scene = get_scene_embeddings(torch.from_numpy(audio), hear)
    direct = torch.stack([enc.embed(a, 16000).pooled for a in audio])
    torch.testing.assert_close(scene, direct, atol=1e-6, rtol=0)


def test_leakage_check_says_loudly_when_it_cannot_check(recipe_run, caplog, monkeypatch):
    monkeypatch.chdir(decoy_cwd(recipe_run["base"]))
    run = open_run(recipe_run["moved"])
    _, missing = run.pretraining_sources()
    assert missing == ["data/cuts_train.jsonl.gz"]  # the recipe folder was deleted
    with caplog.at_level(logging.WARNING):
        check_leakage(run, {"test": CutSet()})
    assert "LEAKAGE NOT CHECKED" in caplog.text and "data/cuts_train.jsonl.gz" in caplog.text


def test_an_old_run_without_run_json_never_uses_the_cwd(recipe_run, tmp_path, monkeypatch):
    old = tmp_path / "old"
    shutil.copytree(recipe_run["moved"], old)
    (old / RUN_FILE).unlink()
    (old / "spm.model").unlink()  # old runs kept only the stats with them
    text = (
        (old / "config.yaml").read_text().replace("model: exp/x/spm.model", "model: data/spm.model")
    )
    (old / "config.yaml").write_text(text)
    monkeypatch.chdir(decoy_cwd(recipe_run["base"]))
    enc = load_encoder(old)  # the stats: the run's own copy by name, not the cwd's exp/x/...
    got = enc.embed_files(recipe_run["files"], progress=False).pooled()
    torch.testing.assert_close(got, recipe_run["ref"], atol=1e-6, rtol=0)
    with pytest.raises(ConfigError, match=r"tokenizer.model: data/spm.model .*not found"):
        open_run(old).tokenizer()  # data/spm.model is in the cwd only: refused, not used


def test_a_wrong_run_dir_is_one_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="not a run directory"):
        open_run(tmp_path)
    with pytest.raises(ConfigError, match="no such run directory"):
        open_run(tmp_path / "nope")


def test_export_round_trip_is_bit_identical(recipe_run, tmp_path, monkeypatch, capsys):
    from toolkit.bin.export import main as export_main

    monkeypatch.chdir(decoy_cwd(recipe_run["base"]))
    out = tmp_path / "exported"
    assert export_main([str(recipe_run["moved"]), str(out)]) == 0
    assert "exported" in capsys.readouterr().out
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "run.json", "README.md", "spm.model"} <= names
    assert not any(n.endswith(".pt") and n != "fbank_stats.pt" for n in names)  # no pickle
    card = (out / "README.md").read_text()
    assert "contrastive" in card and "| training steps | 3 |" in card
    shutil.move(out, tmp_path / "moved_export")  # relocatable too
    a, b = open_run(recipe_run["moved"]).model(), open_run(tmp_path / "moved_export").model()
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    x = torch.from_numpy(np.random.default_rng(0).uniform(-0.3, 0.3, (2, 16000)).astype("float32"))
    lens = torch.tensor([16000, 12000])
    with torch.no_grad():
        ha, la = a.encode(x, lens)
        hb, lb = b.encode(x, lens)
    assert torch.equal(ha, hb) and torch.equal(la, lb)
    enc = load_encoder(tmp_path / "moved_export")
    got = enc.embed_files(recipe_run["files"], progress=False).pooled()
    assert torch.equal(
        got,
        load_encoder(recipe_run["moved"]).embed_files(recipe_run["files"], progress=False).pooled(),
    )
    with pytest.raises(ConfigError, match="not empty"):
        export_main([str(recipe_run["moved"]), str(tmp_path / "moved_export")])


def test_a_tokenizer_of_another_size_is_one_line(recipe_run, tone_data, tmp_path):
    """A run opened with a tokenizer whose vocabulary does not fit its text embedding: one line
    naming both sizes, not a raw size-mismatch traceback."""
    from lhotse import CutSet

    from toolkit.data.cuts import cut_captions
    from toolkit.text.tokenizer import train_sentencepiece

    caps = [c for cut in CutSet.from_file(tone_data["train"]) for c in cut_captions(cut)]
    other = train_sentencepiece(caps, tmp_path / "spm", vocab_size=24)
    run = open_run(recipe_run["moved"], overrides=[f"tokenizer.model={other}"])
    with pytest.raises(ConfigError, match=r"the tokenizer \(.*, 24 tokens\) does not fit"):
        run.model()
