"""egs/captionstew/run.sh stages 0–1 on the fixtures of every corpus (real layouts, tiny audio)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from corpus_fixtures.write_all import SOURCES, write_all
from lhotse import CutSet

from toolkit.data.cuts import cut_custom
from toolkit.data.sources import open_cuts

pytestmark = pytest.mark.slow  # recipes / subprocesses: run by .ci/run (pytest -m slow)

ROOT = Path(__file__).resolve().parents[2]


def test_captionstew_stages_0_1_on_fixtures(tmp_path):
    corpora = write_all(tmp_path / "fixtures")
    data = tmp_path / "data"
    env = {**os.environ, "PYTHON": sys.executable}
    cmd = ["bash", str(ROOT / "egs/captionstew/run.sh"), "--corpora", str(corpora),
           "--data", str(data), "--stage", "0", "--stop-stage", "1", "--nj", "1"]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    # every corpus prepared, sources aggregated, statistics printed
    for name in SOURCES:
        assert (data / "manifests" / f"{name}_cuts_train.jsonl.gz").is_file(), name
    assert (data / "manifests" / "esc50_cuts_fold1.jsonl.gz").is_file()
    assert "| source | audiocaps |" in res.stdout and "| total | total |" in res.stdout
    train = list(CutSet.from_file(data / "cuts_train.jsonl.gz"))
    sources = {s for c in train for s in cut_custom(c)["caption_source"]}
    assert sources <= set(SOURCES) and len(sources) >= 5
    subsets = [len(CutSet.from_file(data / "aggregate" / f"cuts_train_{f}.jsonl.gz"))
               for f in ("0.04", "0.1", "0.4", "1.0")]  # fmt: skip
    assert subsets == sorted(subsets) and subsets[-1] == len(train)
    # the AudioCaps train clip that is also in the strongly labelled test set is filtered out
    assert not any(cut_custom(c).get("audio_key") == "yt:--0w1YA1Hm4:30" for c in train)
    # a rerun of stage 0 reuses every manifest
    res2 = subprocess.run(cmd[:-6] + ["--stage", "0", "--stop-stage", "0", "--nj", "1"],
                          capture_output=True, text=True, env=env, timeout=600)  # fmt: skip
    assert res2.returncode == 0
    assert "(reused)" in res2.stderr and "reused" in res2.stderr


TINY = [
    "encoder.dim=32", "encoder.num_layers=1", "encoder.num_heads=2", "encoder.ff_dim=64",
    "encoder.subsampling_channels=8", "objective.embed_dim=16", "objective.text_encoder.dim=32",
    "objective.text_encoder.num_layers=1", "objective.text_encoder.num_heads=2",
    "objective.text_encoder.ff_dim=64", "data.max_duration=20", "data.num_workers=2",
    "train.max_steps=6", "train.save_every=3", "train.log_every=1", "train.progress=false",
    "train.log_cut_ids=true", "augmentation=null",
]  # fmt: skip


def test_captionstew_stages_0_5_train_from_shar_with_weights(tmp_path):
    """The scale path end to end on the fixtures: prepare → aggregate (per-source Shar, weights)
    → stats → tokenizer → train from the Shar mix → evaluate → report; a rerun is idempotent."""
    import yaml

    corpora = write_all(tmp_path / "fixtures")
    data, exp = tmp_path / "data", tmp_path / "exp"
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    cmd = ["bash", str(ROOT / "egs/captionstew/run.sh"), "--corpora", str(corpora),
           "--data", str(data), "--exp-dir", str(exp), "--nj", "1", "--shar", "true",
           "--weights", "audiocaps=2,wavcaps=0.5", "--vocab-size", "120",
           "--train-args", " ".join(TINY), "--eval-args", "eval.baselines=[] eval.num_workers=0",
           "--stage", "0", "--stop-stage", "5"]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1200)
    assert res.returncode == 0, (res.stdout[-3000:], res.stderr[-3000:])
    sources = yaml.safe_load((data / "aggregate/shar/train_sources.yaml").read_text())
    mix = sources["data"]["train"]
    mux = json.loads((data / "aggregate/mux_weights.json").read_text())
    assert {Path(m["path"]).name: m["weight"] for m in mix} == {
        s: v["mux_weight"] for s, v in mux.items() if v["mux_weight"] > 0
    }
    run_cfg = yaml.safe_load((exp / "config.yaml").read_text())
    assert run_cfg["data"]["train"] == mix  # trained from the Shar sources, not a manifest
    ids = [
        i
        for r in (exp / "cut_ids.rank0.tsv").read_text().splitlines()
        for i in r.split("\t")[2].split(",")
    ]
    shar_ids = {c.id for c in open_cuts(mix, "data.train")}
    assert ids and set(ids) <= shar_ids
    assert (exp / "model.pt").is_file() and (exp / "eval" / "results.md").is_file()
    assert "| retrieval |" in (exp / "eval" / "results.md").read_text()
    assert "[stage 5] results" in res.stdout
    # rerunning every stage is idempotent: each finished stage is skipped, nothing retrained
    before = (exp / "model.pt").stat().st_mtime_ns
    res2 = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1200)
    assert res2.returncode == 0, res2.stderr[-3000:]
    assert (exp / "model.pt").stat().st_mtime_ns == before
    assert "skip: " in res2.stdout and "pretrain →" not in res2.stdout
