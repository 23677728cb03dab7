"""No pickle from outside a run is executed: a checkpoint carrying a pickled callable, handed to
``init_from``, evaluation or ``load_encoder``, is refused with a message naming the file, and the
payload never runs. The toolkit's own checkpoints (RNG states with NumPy arrays) still load."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from toolkit.config import ConfigError, load_config
from toolkit.inference import load_encoder
from toolkit.model import build_tokenizer
from toolkit.runs import open_run
from toolkit.train.checkpoint import list_checkpoints
from toolkit.weights import CheckpointError, load_weights_only, read_state_dict

ROOT = Path(__file__).resolve().parent.parent


class Payload:
    """Unpickling this runs ``Path(marker).touch()``: the attack."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


@pytest.fixture(scope="module")
def run(tiny_run) -> Path:
    return tiny_run


def plant(path: Path, marker: Path, real: dict) -> None:
    """``real`` (a checkpoint dict) with the payload beside the weights."""
    torch.save({**real, "extra": Payload(marker)}, path)
    assert path.is_file() and not marker.exists()


def test_the_payload_is_live(tmp_path):
    """Control: a plain ``torch.load(weights_only=False)`` of the planted file runs it."""
    marker = tmp_path / "pwned"
    plant(tmp_path / "evil.pt", marker, {"model": {}})
    torch.load(tmp_path / "evil.pt", weights_only=False)
    assert marker.exists()


@pytest.mark.slow
def test_init_from_evaluation_and_load_encoder_refuse_a_pickle_payload(run, tone_data, tmp_path):
    marker = tmp_path / "pwned"
    real = load_weights_only(run / "model.pt")  # the toolkit's own file loads weights-only
    evil_run = tmp_path / "evil_run"
    shutil.copytree(run, evil_run)
    plant(evil_run / "model.pt", marker, real)

    with pytest.raises(ConfigError, match=r"encoder.init_from: cannot read .*model.pt.*refused"):
        read_state_dict(evil_run / "model.pt", "encoder.init_from")
    with pytest.raises(CheckpointError, match=r"model.pt: .*refused: loading it could run code"):
        load_encoder(evil_run)
    cfg = load_config([evil_run / "config.yaml"])
    with pytest.raises(CheckpointError, match=r"model.pt"):
        open_run(evil_run).model(build_tokenizer(cfg))
    # the CLI: one line, exit 1, no traceback
    r = subprocess.run(
        [sys.executable, "-m", "toolkit.bin.evaluate", "--exp-dir", str(evil_run)]
        + [f"data.{s}={tone_data[s]}" for s in ("train", "dev", "test")],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
    )
    assert r.returncode == 1 and "checkpoint error:" in r.stderr, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    assert not marker.exists()


def test_own_checkpoints_still_load(run):
    _, newest = list_checkpoints(run / "checkpoints")[-1]
    state = load_weights_only(newest)
    assert {"model", "optimizer", "rng_per_rank", "data_per_rank"} <= set(state)
    assert load_encoder(run) is not None
