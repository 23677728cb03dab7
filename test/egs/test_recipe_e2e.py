"""A tiny end-to-end run of the generic recipe (stages 0–5 of egs/TEMPLATE/pretrain.sh) on the
tone corpus: retrieval must end far above chance and the report files must exist."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # recipes / subprocesses: run by .ci/run (pytest -m slow)

ROOT = Path(__file__).resolve().parents[2]
PREPARE = """
import sys; sys.path.insert(0, {test!r})
from pathlib import Path
from fixtures import make_tone_corpus
for split, n, seed in (("train", 96, 0), ("dev", 24, 1), ("test", 30, 2)):
    make_tone_corpus(Path("audio"), n, seed=seed, prefix=split).to_file(f"man_{{split}}.jsonl.gz")
"""


@pytest.mark.timeout(600)
def test_template_recipe_end_to_end(tmp_path):
    (tmp_path / "prep.py").write_text(PREPARE.format(test=str(ROOT / "test")))
    overrides = " ".join(
        [
            "encoder.dim=48",
            "encoder.num_layers=1",
            "encoder.ff_dim=96",
            "encoder.subsampling_channels=8",
            "objective.embed_dim=32",
            "objective.text_encoder.dim=32",
            "objective.text_encoder.num_layers=1",
            "objective.text_encoder.ff_dim=64",
            "train.max_steps=120",
            "train.progress=false",
            "data.max_duration=30",
            "data.num_workers=0",
            "scheduler.warmup_steps=10",
            "optim.lr=3e-3",
        ]
    )
    cmd = [
        str(ROOT / "egs" / "TEMPLATE" / "pretrain.sh"),
        "--prepare-cmd", f"{sys.executable} prep.py",
        "--train-manifests", "man_train.jsonl.gz",
        "--dev-manifests", "man_dev.jsonl.gz",
        "--test-manifests", "man_test.jsonl.gz",
        "--config", str(ROOT / "egs" / "demo" / "conf" / "pretrain.yaml"),
        "--exp-dir", "exp/tiny",
        "--vocab-size", "40",
        "--nj", "0",
        "--train-args", overrides,
    ]  # fmt: skip
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "2"}
    r = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    for stage in range(6):
        assert f"[stage {stage}]" in r.stdout
    ev = tmp_path / "exp" / "tiny" / "eval"
    for name in ("results.md", "results.csv", "plot_metrics.png", "plot_loss.png"):
        assert (ev / name).is_file(), name
    rows = list(csv.DictReader(open(ev / "results.csv")))
    get = {(r["model"], r["task"], r["metric"]): r for r in rows}
    t2a = get[("pretrained", "text→audio", "R@5")]
    chance_r1 = float(get[("pretrained", "text→audio", "R@1")]["chance"])
    assert float(t2a["value"]) >= 3 * 5 * chance_r1  # R@5 at ≥ 3× its chance (5 × R@1 chance)
    probe = get[("pretrained", "sound_pitch", "acc")]
    assert float(probe["value"]) >= 90.0
    # stages are idempotent: a second run skips finished work
    r2 = subprocess.run(
        cmd[:1] + ["--stage", "1", "--stop-stage", "4"] + cmd[1:],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert r2.returncode == 0 and r2.stdout.count("skip:") == 4
    # supervised initialisation: label vocabulary, a tagging run, then init_from into stage 4
    (tmp_path / "tagging.yaml").write_text(
        f"include: [{ROOT / 'egs' / 'demo' / 'conf' / 'pretrain.yaml'}]\n"
        "objective: {name: tagging, vocab: data/labels.txt, tasks: [sound_pitch]}\n"
    )
    tiny = overrides.replace("train.max_steps=120", "train.max_steps=4")
    tag_over = " ".join(o for o in tiny.split() if not o.startswith("objective."))
    sup = [*cmd[:-4], "--exp-dir", "exp/sup", "--nj", "0", "--train-args", tiny]
    sup += ["--stage", "4", "--stop-stage", "4", "--init", "supervised"]
    sup += ["--tag-config", "tagging.yaml", "--tag-args", tag_over]
    r3 = subprocess.run(sup, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert r3.returncode == 0, r3.stdout[-3000:] + r3.stderr[-3000:]
    assert "sound_pitch\thigh" in (tmp_path / "data" / "labels.txt").read_text()
    assert (tmp_path / "exp" / "sup_tagging" / "model.pt").is_file()
    assert "init_from: exp/sup_tagging/model.pt" in (tmp_path / "exp/sup/config.yaml").read_text()
    assert "init from exp/sup_tagging/model.pt" in (tmp_path / "exp/sup/train.log").read_text()
