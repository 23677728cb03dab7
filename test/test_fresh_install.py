"""A plain ``pip install -e .`` in a fresh virtual environment (no extras, nothing inherited from
the system Python) imports every ``toolkit`` module and runs ``--help`` of every console script;
then ``pip install -e ".[metrics,hf,dev]"`` in the same venv does too, and each extra's feature
works (captioning metrics, Hugging Face towers, the test/lint tools).

The system Python of a development machine often has packages that a user's fresh venv lacks
(lhotse 1.33 imports ``urllib3`` without declaring it); this runs ``tools/check_install.sh``,
which installs into a new venv as a user would.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # recipes / subprocesses: run by .ci/run (pytest -m slow)

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(900)
def test_plain_and_extras_installs_in_a_fresh_venv_import_everything(tmp_path):
    env = {"VENV": str(tmp_path / "venv"), "PYTHON": sys.executable, "PATH": "/usr/bin:/bin"}
    env.update(EXTRAS="metrics,hf,dev", PLAIN_FIRST="1")
    r = subprocess.run(
        ["bash", str(ROOT / "tools" / "check_install.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=880,
    )
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    assert out.count("console scripts answer --help") == 2, out[-2000:]  # plain, then extras
    assert "pip install -e '.'" in out and "pip install -e '.[metrics,hf,dev]'" in out
    for part in out.split("[check_install] imported ")[1:]:
        n_ok, n_all = part.split(" modules")[0].split("/")
        assert n_ok == n_all and int(n_all) > 100
    for extra in ("metrics", "hf", "dev"):
        assert f"extra [{extra}] works" in out
