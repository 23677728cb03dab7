"""bench/optimizer_step.py: its CPU smoke run (the tiny preset) and what its table reports."""

from __future__ import annotations

import json

import pytest
from fixtures import run_bench

pytestmark = pytest.mark.slow  # recipes / subprocesses: run by .ci/run (pytest -m slow)


def test_optimizer_bench_tiny_cpu(tmp_path):
    out = tmp_path / "opt.json"
    args = ["--tiny", "--device", "cpu", "--warmup", "9", "--repeats", "2", "--json", str(out)]
    proc = run_bench("optimizer_step.py", *args)
    assert "| scaled_adam | " in proc.stdout and "| scaled_adam-reference | " in proc.stdout
    data = json.loads(out.read_text())
    rows = {r["optimizer"]: r for r in data["rows"]}
    assert set(rows) == {"scaled_adam", "scaled_adam-reference", "adamw-foreach"}
    assert data["meta"]["tensors"] > 100  # the real Zipformer topology at tiny widths
    assert rows["scaled_adam-reference"]["speedup_vs_reference"] == 1.0
    # the flat-buffer step dispatches a small fraction of the reference's operators
    assert rows["scaled_adam"]["ops_per_step"] * 10 < rows["scaled_adam-reference"]["ops_per_step"]
    assert all(r["step_ms"] > 0 and r["syncs_per_step"] == 0 for r in rows.values())
    assert rows["scaled_adam-reference"]["max_abs_diff_vs_reference"] == 0.0
    assert rows["scaled_adam"]["max_abs_diff_vs_reference"] < 1e-4  # same steps, same result
    assert rows["adamw-foreach"]["max_abs_diff_vs_reference"] is None
