"""Checkpoint averaging (toolkit.train.average, toolkit.bin.average): the exact elementwise mean,
integer buffers from the newest checkpoint, the CLI on a saved run, refusals, safe loading."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from toolkit.bin.average import main as average_main
from toolkit.config import dump_config
from toolkit.inference import load_encoder
from toolkit.registry import ENCODERS, FRONTENDS
from toolkit.train.average import AverageError, average_checkpoints, select_checkpoints
from toolkit.train.checkpoint import rng_state, save_checkpoint
from toolkit.weights import CheckpointError

ROOT = Path(__file__).resolve().parents[2]


def weights(seed: int, count: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "w": torch.randn(4, 3, generator=g),
        "half": torch.randn(5, generator=g).half(),
        "bf16": torch.randn(5, generator=g).bfloat16(),
        "batch_count": torch.tensor(count),
        "mask": torch.tensor([count % 2 == 0, True]),
    }


def save(run: Path, step: int, model: dict, **extra) -> Path:
    """A checkpoint with the trainer's layout (optimizer, trainer step, NumPy RNG states)."""
    state = {
        "model": model,
        "optimizer": {"state": {}, "param_groups": []},
        "trainer": {"step": step, "epoch": 0},
        "rng_per_rank": [rng_state()],
        "world_size": 1,
        **extra,
    }
    return save_checkpoint(run / "checkpoints", step, state, keep_last=100)


def mean(*ts: torch.Tensor) -> torch.Tensor:
    acc = torch.zeros(ts[0].shape, dtype=torch.float64)
    for t in ts:
        acc += t.double()
    return (acc / len(ts)).to(ts[0].dtype)


def test_average_is_the_elementwise_mean(tmp_path):
    run = tmp_path / "run"
    states = {s: weights(s, 100 + s) for s in (10, 20, 30, 40)}
    for s, w in states.items():
        save(run, s, w, ema={k: v + 1 if v.is_floating_point() else v for k, v in w.items()})
    files = select_checkpoints(run, 3)
    assert [p.name for p in files] == ["checkpoint-20.pt", "checkpoint-30.pt", "checkpoint-40.pt"]
    avg = average_checkpoints(files)
    last3 = [states[s] for s in (20, 30, 40)]
    for k in ("w", "half", "bf16"):
        assert avg.weights[k].dtype == states[10][k].dtype
        assert torch.equal(avg.weights[k], mean(*(w[k] for w in last3))), k
    assert (
        int(avg.weights["batch_count"]) == 140 and avg.weights["batch_count"].dtype == torch.int64
    )
    assert avg.weights["mask"].tolist() == [True, True]
    assert list(avg.weights) == list(states[10])  # the state dict's key order
    assert avg.step == 40

    # explicit files in any order: the newest is the one with the highest step
    avg2 = average_checkpoints([files[2], files[0], files[1]])
    assert int(avg2.weights["batch_count"]) == 140 and avg2.step == 40
    assert [p.name for p in avg2.files] == [p.name for p in files]
    # the EMA weights instead of the model's
    ema = average_checkpoints(files, key="ema")
    assert torch.equal(ema.weights["w"], mean(*(w["w"] + 1 for w in last3)))


def test_refuses_too_few_mismatched_and_unreadable(tmp_path):
    run = tmp_path / "run"
    a = save(run, 1, weights(1, 1))
    b = save(run, 2, weights(2, 2))
    with pytest.raises(AverageError, match=r"holds 2 checkpoint.*checkpoint-1.pt.*keep_last >= 3"):
        select_checkpoints(run, 3)

    bad_shape = weights(3, 3)
    bad_shape["w"] = torch.zeros(4, 4)
    c = save(run, 3, bad_shape)
    with pytest.raises(AverageError, match=r"checkpoint-3.pt and .*checkpoint-1.pt.* w: \(4, 4\)"):
        average_checkpoints([a, b, c])

    extra = {**weights(4, 4), "new.bias": torch.zeros(2)}
    del extra["half"]
    d = save(run, 4, extra)
    with pytest.raises(AverageError, match=r"only in checkpoint-1.pt: \[half\].*\[new.bias\]"):
        average_checkpoints([a, d])

    garbage = run / "checkpoints" / "checkpoint-5.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read .*checkpoint-5.pt"):
        average_checkpoints([a, b, garbage])
    with pytest.raises(AverageError, match="does not exist"):
        average_checkpoints([a, run / "nope.pt"])
    with pytest.raises(AverageError, match="holds no 'ema' state dict"):
        average_checkpoints([a, b], key="ema")
    with pytest.raises(AverageError, match="given twice"):
        average_checkpoints([a, a])


class Payload:
    """Unpickling it calls ``open(marker, "w")``: code run by loading the file."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_payload_is_not_executed(tmp_path):
    run = tmp_path / "run"
    marker = tmp_path / "pwned"
    files = [save(run, s, weights(s, s)) for s in (1, 2)]
    evil = save(run, 3, weights(3, 3), extra=Payload(marker))
    with pytest.raises(CheckpointError, match=r"checkpoint-3.pt: Unsupported global: .*open"):
        average_checkpoints([*files, evil])
    assert not marker.exists()
    assert average_main(["--exp-dir", str(run), "--avg", "3"]) == 1
    assert not marker.exists()
    # the payload is real: a plain pickle load runs it
    torch.load(evil, weights_only=False)
    assert marker.exists()


TINY = {
    "frontend": {"name": "fbank", "num_mel_bins": 16},
    "encoder": {
        "name": "transformer",
        "dim": 16,
        "num_layers": 1,
        "num_heads": 2,
        "ff_dim": 32,
        "dropout": 0.0,
        "subsampling_channels": 4,
    },
}


def tiny_run(run: Path, steps: list[int]) -> list[dict[str, torch.Tensor]]:
    """A run dir (config.yaml + checkpoints) of a tiny fbank + transformer encoder whose
    checkpoints hold differently initialised weights."""
    dump_config(TINY, run / "config.yaml")
    out = []
    for step in steps:
        torch.manual_seed(step)
        fe = FRONTENDS.build(TINY["frontend"], key="frontend")
        model = nn.ModuleDict(
            {"frontend": fe, "encoder": ENCODERS.build(TINY["encoder"], input_dim=fe.output_dim)}
        )
        out.append({k: v.clone() for k, v in model.state_dict().items()})
        save(run, step, model.state_dict())
    return out


def test_cli_end_to_end(tmp_path, capsys):
    run = tmp_path / "exp"
    states = tiny_run(run, [5, 10, 15, 20])
    assert average_main(["--exp-dir", str(run), "--avg", "3"]) == 0
    out = run / "model_avg3.pt"
    assert capsys.readouterr().out.strip() == str(out)
    res = torch.load(out, map_location="cpu", weights_only=True)  # plain tensors and lists
    assert set(res) == {"model", "config", "step", "averaged_from"}
    assert res["step"] == 20 and res["config"]["encoder"]["dim"] == 16
    assert res["averaged_from"] == ["checkpoint-10.pt", "checkpoint-15.pt", "checkpoint-20.pt"]
    for k, v in res["model"].items():
        assert torch.equal(v, mean(*(s[k] for s in states[1:]))), k

    # the averaged file evaluates like a model.pt
    enc = load_encoder(run, checkpoint=out)
    for k, v in enc.encoder.state_dict().items():
        assert torch.equal(v, res["model"]["encoder." + k]), k

    # explicit files and -o; the run (config.yaml) is found from the files
    files = [str(run / "checkpoints" / f"checkpoint-{s}.pt") for s in (20, 5)]
    out2 = tmp_path / "two.pt"
    assert average_main(["--checkpoints", *files, "-o", str(out2)]) == 0
    res2 = torch.load(out2, weights_only=True)
    assert res2["averaged_from"] == ["checkpoint-5.pt", "checkpoint-20.pt"]
    assert res2["step"] == 20
    for k, v in res2["model"].items():
        assert torch.equal(v, mean(states[0][k], states[3][k])), k

    # refusals: too few checkpoints, --avg disagreeing with --checkpoints
    assert average_main(["--exp-dir", str(run), "--avg", "5"]) == 1
    assert "holds 4 checkpoint(s)" in capsys.readouterr().err
    r = subprocess.run(
        [sys.executable, "-m", "toolkit.bin.average", "--checkpoints", *files, "--avg", "3"],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "--avg 3 but 2 --checkpoints" in r.stderr
