"""``egs/TEMPLATE/pretrain.sh --force true`` redoes stage 4 without deleting the earlier run: the
old ``--exp-dir`` (and the supervised-init ``tag_exp_dir``) is moved aside to ``<dir>.old.<N>``.

Fast: ``--python`` is a stub that answers ``config_get`` and "trains" by writing ``model.pt``."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # recipes / subprocesses: run by .ci/run (pytest -m slow)

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "egs" / "TEMPLATE" / "pretrain.sh"
STUB = r"""#!/usr/bin/env bash
# stand-in for python: -m <module> [args]
mod=$2; shift 2
case "$mod" in
  toolkit.bin.config_get) echo none ;;
  toolkit.bin.label_vocab) while [ $# -gt 0 ]; do [ "$1" = -o ] && echo x > "$2"; shift; done ;;
  toolkit.bin.train)
    while [ $# -gt 0 ]; do [ "$1" = --exp-dir ] && exp=$2; shift; done
    mkdir -p "$exp" && echo new > "$exp/model.pt" ;;
  *) echo "unexpected module $mod" >&2; exit 3 ;;
esac
"""


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    stub = tmp_path / "fakepy"
    if not stub.exists():
        stub.write_text(STUB)
        stub.chmod(0o755)
    cmd = ["bash", str(SCRIPT), "--stage", "4", "--stop-stage", "4", "--python", str(stub)]
    r = subprocess.run(cmd + list(args), cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def _finished_run(exp: Path, text: str = "old") -> None:
    (exp / "eval").mkdir(parents=True)
    (exp / "model.pt").write_text(text)
    (exp / "eval" / "results.md").write_text("released numbers")


def test_force_moves_a_finished_run_aside(tmp_path):
    exp = tmp_path / "exp" / "released"
    _finished_run(exp)
    r = _run(tmp_path, "--exp-dir", "exp/released/", "--force", "true")  # trailing slash too
    old1 = tmp_path / "exp" / "released.old.1"
    assert (old1 / "model.pt").read_text() == "old"
    assert (old1 / "eval" / "results.md").read_text() == "released numbers"
    assert (exp / "model.pt").read_text() == "new\n"
    assert "moved the earlier run exp/released aside to exp/released.old.1" in r.stdout
    # again: the next free name, the first copy untouched
    _run(tmp_path, "--exp-dir", "exp/released", "--force", "true")
    assert (tmp_path / "exp" / "released.old.2" / "model.pt").read_text() == "new\n"
    assert (old1 / "model.pt").read_text() == "old"
    assert sorted(p.name for p in (tmp_path / "exp").iterdir()) == [
        "released",
        "released.old.1",
        "released.old.2",
    ]


def test_without_force_a_finished_run_is_skipped(tmp_path):
    exp = tmp_path / "exp" / "x"
    _finished_run(exp)
    r = _run(tmp_path, "--exp-dir", "exp/x")
    assert "skip: exp/x/model.pt exists" in r.stdout
    assert (exp / "model.pt").read_text() == "old"
    assert sorted(p.name for p in (tmp_path / "exp").iterdir()) == ["x"]


def test_force_with_supervised_init_moves_the_tagging_run_aside(tmp_path):
    _finished_run(tmp_path / "exp" / "p")
    _finished_run(tmp_path / "exp" / "p_tagging", "tag")
    (tmp_path / "data").mkdir()
    _run(tmp_path, "--exp-dir", "exp/p", "--force", "true", "--init", "supervised")
    assert (tmp_path / "exp" / "p_tagging.old.1" / "model.pt").read_text() == "tag"
    assert (tmp_path / "exp" / "p.old.1" / "model.pt").read_text() == "old"
    assert (tmp_path / "exp" / "p_tagging" / "model.pt").read_text() == "new\n"
    assert (tmp_path / "exp" / "p" / "model.pt").read_text() == "new\n"
