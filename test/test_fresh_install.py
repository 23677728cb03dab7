"""A plain ``pip install -e .`` in a fresh virtual environment (no extras, nothing inherited from
the system Python) imports every ``toolkit`` module and runs ``--help`` of every console script.

The system Python of a development machine often has packages that a user's fresh venv lacks
(lhotse 1.33 imports ``urllib3`` without declaring it); this runs ``tools/check_install.sh``,
which installs into a new venv as a user would.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(900)
def test_plain_install_in_a_fresh_venv_imports_everything(tmp_path):
    env = {"VENV": str(tmp_path / "venv"), "PYTHON": sys.executable, "PATH": "/usr/bin:/bin"}
    r = subprocess.run(
        ["bash", str(ROOT / "tools" / "check_install.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=880,
    )
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    assert "imported" in out and "console scripts answer --help" in out, out[-2000:]
    n_ok, n_all = out.split("[check_install] imported ")[1].split(" modules")[0].split("/")
    assert n_ok == n_all and int(n_all) > 100
