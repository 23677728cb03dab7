"""toolkit.load: embeddings, zero-shot, captions, and the CLIs, on tiny runs of the tone corpus."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from fixtures import tiny_config, train_tiny_run
from lhotse import CutSet

import toolkit
from toolkit.bin.caption import main as caption_main
from toolkit.bin.zeroshot import main as zeroshot_main
from toolkit.config import ConfigError

ROOT = Path(__file__).resolve().parent.parent
CAPTIONING = ROOT / "egs" / "demo" / "conf" / "pretrain_captioning.yaml"
PITCHES = ["low", "middle", "high"]


@pytest.fixture(scope="module")
def run_dir(tone_data, tmp_path_factory) -> Path:
    return train_tiny_run(tone_data, tmp_path_factory.mktemp("api") / "exp", steps=30)


@pytest.fixture(scope="module")
def model(run_dir):
    return toolkit.load(run_dir)


def clips(tone_data, split="test") -> list[Path]:
    return sorted((tone_data["root"] / "audio").glob(f"{split}*.wav"))


def test_embeddings_are_deterministic_and_batch_independent(model, tone_data):
    files = clips(tone_data)[:6]
    a = model.embed_audio(files)
    assert a.shape == (6, 16) and torch.allclose(a.norm(dim=1), torch.ones(6), atol=1e-5)
    one_by_one = torch.cat([model.embed_audio(f) for f in files])
    torch.testing.assert_close(a, one_by_one, atol=1e-6, rtol=0)
    torch.testing.assert_close(model.embed_audio(files), a, atol=0, rtol=0)  # every call
    # the same clip as a stereo 44.1 kHz array: resampled and downmixed
    x, sr = sf.read(files[0], dtype="float32")
    enc = model.embed_audio(files[0], space="encoder")
    assert enc.shape == (1, 32)
    with pytest.raises(ValueError, match="sampling_rate"):
        model.embed_audio(x)
    same = model.embed_audio(np.stack([x, x]), sampling_rate=sr)
    torch.testing.assert_close(same, a[:1], atol=1e-5, rtol=0)
    t = model.embed_text(["a low steady tone", "a high beeping tone"])
    assert t.shape == (2, 16) and torch.allclose(t.norm(dim=1), torch.ones(2), atol=1e-5)
    sim = model.similarity(files[:2], ["a low steady tone"])
    torch.testing.assert_close(sim, a[:2] @ t[:1].t(), atol=1e-5, rtol=0)


def test_zero_shot_result(model, tone_data):
    files = clips(tone_data)[:4]
    r = model.zero_shot(files, PITCHES, template="a {label} tone")
    assert r.probs.shape == (4, 3) and torch.allclose(r.probs.sum(1), torch.ones(4))
    assert r.templates == ["a {label} tone"] and len(r.prompts_hash) == 12
    assert r.top(0) in PITCHES
    with pytest.raises(ValueError, match="needs \\{label\\}"):
        model.zero_shot(files, PITCHES, template="a tone")
    with pytest.raises(ConfigError, match="no decoder"):
        model.caption(files[:1])


@pytest.mark.slow
def test_zero_shot_cli_equals_the_evaluation_stage(run_dir, tone_data, tmp_path):
    """The CLI's accuracy on the test split equals the zero_shot evaluator's for the same
    template (toolkit.bin.evaluate on the same run)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    zs = "{name: zero_shot, templates: ['a {label} tone']}"
    cmd = [sys.executable, "-m", "toolkit.bin.evaluate", "--exp-dir", str(run_dir)]
    cmd += ["--out-dir", str(tmp_path / "eval"), "eval.baselines=[]", f"eval.evaluators=[{zs}]"]
    cmd += [f"data.{s}={tone_data[s]}" for s in ("train", "dev", "test")]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = list(csv.DictReader(open(tmp_path / "eval" / "results.csv")))
    ev = next(
        float(row["value"])
        for row in rows
        if row["task"] == "sound_pitch" and row["metric"] == "acc" and row["model"] == "pretrained"
    )
    out = tmp_path / "zs.tsv"
    files = [str(p) for p in clips(tone_data)]
    argv = ["--model", str(run_dir), "--labels", ",".join(PITCHES), "--template", "a {label} tone"]
    assert zeroshot_main([*argv, "-o", str(out), "--no-progress", *files]) == 0
    got = {row["path"]: row["top"] for row in csv.DictReader(open(out), delimiter="\t")}
    truth = {
        c.recording.sources[0].source: c.supervisions[0].custom["sound_pitch"]
        for c in CutSet.from_file(tone_data["test"])
    }
    acc = 100 * np.mean([got[p] == truth[p] for p in files])
    assert acc == pytest.approx(ev, abs=1e-6)
    # the same prompt set is named by the same hash in the evaluation rows and the API
    row = next(r for r in rows if r["task"] == "sound_pitch" and r["model"] == "pretrained")
    api = toolkit.load(run_dir).zero_shot(files[:1], PITCHES, template="a {label} tone")
    assert row["prompts_hash"] == api.prompts_hash


def test_zero_shot_cli_folder_json_and_skips(run_dir, tone_data, tmp_path, capsys):
    folder = tmp_path / "clips"
    (folder / "sub").mkdir(parents=True)
    for f in clips(tone_data)[:3]:
        (folder / "sub" / f.name).write_bytes(f.read_bytes())
    (folder / "broken.wav").write_bytes(b"not audio" * 50)
    argv = ["--model", str(run_dir), "--labels", "low,high", "--json", "--no-progress"]
    assert zeroshot_main([*argv, str(folder)]) == 0
    cap = capsys.readouterr()
    recs = [json.loads(x) for x in cap.out.splitlines()]
    assert len(recs) == 3 and all(r["top"] in ("low", "high") for r in recs)
    assert {"prompts_hash", "model_id", "low", "high", "prob"} <= set(recs[0])
    assert "done: 3 files, 1 skipped" in cap.err and "broken.wav" in cap.err
    with pytest.raises(ConfigError, match="--labels"):
        zeroshot_main(["--model", str(run_dir), str(folder)])


@pytest.fixture(scope="module")
def captioning_run(tone_data, tmp_path_factory) -> Path:
    exp = tmp_path_factory.mktemp("cap") / "exp"
    over = tiny_config(exp, tone_data["train"], tone_data["spm"], **{"frontend.stats_file": "null"})
    over = [o for o in over if not o.startswith("objective.")]
    over += [
        "train.max_steps=4",
        "objective.decoder.dim=32",
        "objective.decoder.num_layers=1",
        "objective.decoder.num_heads=2",
        "objective.decoder.ff_dim=64",
    ]
    cmd = [sys.executable, "-m", "toolkit.bin.train", "-c", str(CAPTIONING), "--exp-dir", str(exp)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd + over, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    return exp


def test_caption_api_and_cli(captioning_run, tone_data, tmp_path, capsys):
    m = toolkit.load(captioning_run)
    files = clips(tone_data)[:2]
    caps = m.caption(files, method="greedy", max_len=8)
    assert len(caps) == 2 and all(isinstance(c, str) for c in caps)
    assert m.caption(files, method="greedy", max_len=8) == caps  # deterministic
    with pytest.raises(ConfigError, match="no joint audio-text space"):
        m.embed_audio(files, space="joint")
    assert m.embed_audio(files).shape == (2, 32)  # auto: the encoder space
    argv = ["--model", str(captioning_run), "--method", "greedy", "--max-len", "8"]
    assert caption_main([*argv, "--no-progress", *map(str, files)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "path\tcaption" and [ln.split("\t")[1] for ln in lines[1:]] == caps


def test_index_and_search_cli(run_dir, tone_data, tmp_path, capsys):
    from toolkit.bin.index import main as index_main
    from toolkit.bin.search import main as search_main

    folder = tmp_path / "archive"
    folder.mkdir()
    cuts = CutSet.from_file(tone_data["test"])
    for c in cuts:
        src = Path(c.recording.sources[0].source)
        (folder / src.name).write_bytes(src.read_bytes())
    (folder / "empty.wav").write_bytes(b"")
    idx = tmp_path / "index"
    assert index_main(["--model", str(run_dir), "-o", str(idx), "--no-progress", str(folder)]) == 0
    out = capsys.readouterr()
    assert f"{len(cuts)} files ({len(cuts)} added" in out.out and "1 skipped" in out.out
    assert index_main(["--model", str(run_dir), "-o", str(idx), "--no-progress", str(folder)]) == 0
    assert f"{len(cuts)} unchanged" in capsys.readouterr().out  # incremental: nothing embedded
    caption = {Path(c.recording.sources[0].source).name: c.supervisions[0].text for c in cuts}
    query = next(iter(caption.values()))
    assert search_main([str(idx), query, "-k", "10", "--json"]) == 0
    hits = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [h["rank"] for h in hits] == list(range(1, 11))
    assert all(a["score"] >= b["score"] for a, b in zip(hits, hits[1:]))
    assert caption[Path(hits[0]["path"]).name] == query  # the best hit has the queried caption
    m = toolkit.load(run_dir)
    api_hits = m.search(idx, query, k=10)
    assert [h.path for h in api_hits] == [h["path"] for h in hits]
