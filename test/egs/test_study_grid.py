"""egs/TEMPLATE/study.sh (toolkit-study plan | run | report): a tiny grid trains and evaluates
every cell, writes the report, and a rerun skips the finished cells (resumable)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
from pathlib import Path

import pytest
from fixtures import tiny_config
from lhotse import CutSet

pytestmark = pytest.mark.slow  # recipes / subprocesses: run by .ci/run (pytest -m slow)

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "egs" / "demo" / "conf" / "pretrain.yaml"


@pytest.mark.timeout(900)
def test_study_grid_runs_and_resumes(tone_data, tmp_path):
    data = tmp_path / "data"
    (data / "aggregate").mkdir(parents=True)
    for split in ("train", "dev", "test"):
        (data / f"cuts_{split}.jsonl.gz").symlink_to(tone_data[split])
    train = list(CutSet.from_file(tone_data["train"]))
    CutSet.from_cuts(train[:18]).to_file(data / "aggregate" / "cuts_train_0.5.jsonl.gz")
    (data / "aggregate" / "cuts_train_1.0.jsonl.gz").symlink_to(tone_data["train"])
    over = tiny_config(tmp_path, tone_data["train"], tone_data["spm"], **{"train.max_steps": 2})
    over = [o for o in over if not o.startswith("data.train=")]
    conf = tmp_path / "conf"
    conf.mkdir()
    body = "\n".join(f"# {o}" for o in over)  # documented, passed as overrides below
    (conf / "pretrain_contrastive.yaml").write_text(f"include: [{CONF}]\n{body}\n")
    (conf / "eval.yaml").write_text("eval: {baselines: [], evaluators: [{name: linear_probe}]}\n")
    cmd = [
        "bash", str(ROOT / "egs/TEMPLATE/study.sh"), "--objectives", "contrastive",
        "--fractions", "0.5 1.0", "--inits", "scratch", "--subset-dir", str(data / "aggregate"),
        "--data-dir", str(data), "--study-dir", str(tmp_path / "study"),
        "--config-pattern", str(conf / "pretrain_{objective}.yaml"),
        "--train-args", " ".join([*over, "frontend.stats_file=null"]),
        "--eval-args", "eval.num_workers=0", "--eval-config", str(conf / "eval.yaml"), "--nj", "0",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=800)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    cells = sorted(p.name for p in (tmp_path / "study").glob("contrastive_*"))
    assert cells == ["contrastive_scratch_f0.5_all_s0", "contrastive_scratch_f1.0_all_s0"]
    rows = list(csv.DictReader((tmp_path / "study" / cells[0] / "eval/results.csv").open()))
    assert {x["tag_fraction"] for x in rows} == {"0.5"}
    cfg = (tmp_path / "study" / cells[0] / "config.yaml").read_text()
    assert "cuts_train_0.5.jsonl.gz" in cfg  # pretrained on the subset ...
    assert rows and all(x["group"] == "linear probe (mean pool)" for x in rows)
    md = (tmp_path / "study/report/study.md").read_text()
    assert "## 2. Score vs pretraining data fraction" in md and "f=0.5" in md
    assert (tmp_path / "study/report/plot_scaling.png").is_file()

    plan = json.loads((tmp_path / "study" / "plan.json").read_text())  # toolkit-study plan
    assert [r["name"] for r in plan["runs"]] == cells
    assert "pretrain →" in (tmp_path / "study" / "logs" / f"{cells[0]}.log").read_text()

    # a rerun skips both finished cells (no retraining, no re-evaluation)
    r2 = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=800)
    assert r2.returncode == 0, r2.stderr[-2000:]
    assert "2 cells (2 done, 0 partial, 0 todo)" in r2.stdout
    assert r2.stdout.count("skip: cell") == 2 and "pretrain →" not in r2.stdout
