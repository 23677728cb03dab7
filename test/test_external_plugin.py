"""A plugin written outside the package trains from YAML without touching package files."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures import tiny_config

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = ROOT / "egs" / "demo" / "local" / "margin_contrastive.py"
CONF = ROOT / "egs" / "demo" / "conf" / "pretrain.yaml"


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_out_of_tree_objective_trains_from_yaml(tone_data, tmp_path):
    lab = tmp_path / "my_lab"  # a user's own folder, not inside the package
    (lab / "local").mkdir(parents=True)
    shutil.copy(PLUGIN, lab / "local" / "margin_contrastive.py")
    (lab / "conf.yaml").write_text(
        f"include: [{CONF}]\n"
        "plugins: [local.margin_contrastive]\n"
        "objective:\n"
        "  name: margin_contrastive\n"
        "  margin: 0.2\n"
        "  embed_dim: 16\n"
        "  text_encoder: {name: transformer, dim: 32, num_layers: 1, num_heads: 2, ff_dim: 64}\n"
    )
    over = tiny_config(tmp_path, tone_data["train"], tone_data["spm"], **{"train.max_steps": 4})
    over = [o for o in over if not o.startswith("objective.")] + ["frontend.stats_file=null"]
    over += [f"data.dev={tone_data['dev']}", f"data.test={tone_data['test']}"]
    exp = lab / "exp"
    cmd = [sys.executable, "-m", "toolkit.bin.train", "-c", "conf.yaml", "--exp-dir", "exp"]
    r = _run(cmd + over, lab)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = list(csv.DictReader((exp / "train_log.csv").open()))
    names = {r["name"] for r in rows}
    assert "train/positive_cos" in names, names
    assert "margin_contrastive" in (exp / "config.yaml").read_text()
    assert (exp / "model.pt").is_file()

    # stage 5 evaluates the run (config.yaml names the plugin, so evaluate imports it too)
    ev = [sys.executable, "-m", "toolkit.bin.evaluate", "--exp-dir", "exp", "eval.num_workers=0"]
    r = _run(ev + ["eval.baselines=[]"], lab)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = list(csv.DictReader((exp / "eval" / "results.csv").open()))
    assert {"linear probe (mean pool)", "retrieval"} <= {r["group"] for r in rows}

    # an unknown plugin name lists the known ones, the out-of-tree one included
    r = _run([*cmd[:-1], "exp_unknown", *over, "objective.name=nope"], lab)
    assert r.returncode != 0 and "unknown objective 'nope'" in r.stderr
    assert "margin_contrastive" in r.stderr and "contrastive" in r.stderr

    # a misspelt key of the plugin is a clear config error naming it and the known keys
    bad = [*cmd[:-1], "exp_bad", *over, "objective.margn=0.1"]
    r = _run(bad, lab)
    assert r.returncode != 0
    assert "objective.margn" in r.stderr and "margin" in r.stderr
