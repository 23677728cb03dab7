"""Trainer: exact resume after SIGKILL, NaN/inf handling, atomic checkpoints, keep-last-K."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from fixtures import TINY_ZIPFORMER, tiny_config

from toolkit.schema import TrainConfig
from toolkit.train import checkpoint as ckpt
from toolkit.train.trainer import Trainer, TrainingError, native_bf16, uses_bf16

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "egs" / "demo" / "conf" / "pretrain.yaml"


def train_cmd(data: dict, exp: Path, steps: int, resume: bool = False) -> list[str]:
    over = tiny_config(
        exp,
        data["train"],
        data["spm"],
        **{"train.max_steps": steps, "train.save_every": 4, "frontend.stats_file": "null"},
    )
    cmd = [sys.executable, "-m", "toolkit.bin.train", "-c", str(CONF), "--exp-dir", str(exp)]
    return cmd + (["--resume"] if resume else []) + over


def final_weights(exp: Path) -> dict:
    return torch.load(exp / "model.pt", weights_only=False)["model"]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_sigkill_then_resume_equals_uninterrupted(tone_data, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    steps = 40
    ref = tmp_path / "ref"
    subprocess.run(train_cmd(tone_data, ref, steps), check=True, env=env, capture_output=True)

    exp = tmp_path / "killed"
    proc = subprocess.Popen(train_cmd(tone_data, exp, steps), env=env, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (exp / "checkpoints" / "checkpoint-12.pt").exists():
        assert proc.poll() is None, "training ended before it could be killed"
        assert time.time() < deadline
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (exp / "model.pt").exists()
    done = ckpt.list_checkpoints(exp / "checkpoints")[-1][0]
    assert 12 <= done < steps

    r = subprocess.run(
        train_cmd(tone_data, exp, steps, resume=True), env=env, capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"resumed from step {done}" in r.stderr
    a, b = final_weights(ref), final_weights(exp)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # the log has one row per (step, name): rows after the checkpoint were not duplicated
    rows = (exp / "train_log.csv").read_text().splitlines()[1:]
    keys = [tuple(r.split(",")[:2]) for r in rows]
    assert len(keys) == len(set(keys))


@pytest.mark.slow
def test_without_resume_refuses_to_overwrite(tone_data, tmp_path):
    exp = tmp_path / "e"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run(train_cmd(tone_data, exp, 4), check=True, env=env, capture_output=True)
    r = subprocess.run(train_cmd(tone_data, exp, 4), env=env, capture_output=True, text=True)
    assert r.returncode == 2 and "--resume" in r.stderr


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_compiled_training_equals_eager(tone_data, tmp_path):
    """train.compile=true (the eager backend: dynamo traces, no code generation) trains a tiny
    Zipformer through all its schedule milestones (warmup_batches 1: steps 1, 4, 5) to the same
    weights, under the same parameter names, as the plain run."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    extra = ["encoder=" + ZIPFORMER_TINY]
    runs = {}
    for name, flags in (("eager", []), ("compiled", ["train.compile=true"])):
        exp = tmp_path / name
        cmd = train_cmd(tone_data, exp, 6) + extra + flags + ["train.compile_backend=eager"]
        r = subprocess.run(cmd, env=env, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-3000:]
        runs[name] = final_weights(exp)
    assert "torch.compile (eager)" in r.stderr
    a, b = runs["eager"], runs["compiled"]
    assert a.keys() == b.keys() and "encoder.batch_count" in a
    assert int(b["encoder.batch_count"]) == 6
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-5, atol=1e-6, msg=k)


ZIPFORMER_TINY = json.dumps(  # a YAML flow mapping for the command line
    {"name": "zipformer", **TINY_ZIPFORMER, "warmup_batches": 1.0, "output_dim": 32}
)


class ToyModel(torch.nn.Module):
    """Loss = (w·x)²; batches whose ``x`` is NaN give a NaN loss."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(3))

    def forward(self, batch):
        return {"loss": (self.w * batch["x"]).sum() ** 2}


class ListLoader:
    def __init__(self, xs):
        self.xs = xs
        self.skip = 0

    def set_epoch(self, epoch, skip=0):
        self.skip = skip

    def __iter__(self):
        for x in self.xs[self.skip :]:
            yield {"x": x, "cut_ids": ["a"]}


def make_trainer(tmp_path, xs, **cfg):
    model = ToyModel()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    loader = ListLoader(xs)
    tcfg = TrainConfig(progress=False, log_every=1, save_every=100, **cfg)
    return Trainer(model, opt, None, loader, loader, tcfg, tmp_path, torch.device("cpu")), model


def test_nan_batches_are_skipped(tmp_path):
    nan = torch.full((3,), float("nan"))
    xs = [torch.ones(3), nan, torch.ones(3), nan, torch.ones(3)]
    trainer, model = make_trainer(tmp_path, xs, max_steps=3, max_epochs=1, max_bad_steps=3)
    trainer.fit()
    assert trainer.step == 3 and torch.isfinite(model.w).all()


def test_nan_streak_aborts_with_clear_message(tmp_path):
    nan = torch.full((3,), float("nan"))
    trainer, _ = make_trainer(tmp_path, [torch.ones(3)] + [nan] * 5, max_steps=10, max_bad_steps=3)
    with pytest.raises(TrainingError, match="NaN/inf for 3 batches in a row"):
        trainer.fit()


def test_checkpoint_write_failure_keeps_previous(tmp_path, monkeypatch):
    d = tmp_path / "ck"
    ckpt.save_checkpoint(d, 1, {"a": 1}, keep_last=2)

    def full_disk(obj, f):
        f.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(ckpt.CheckpointError, match="checkpoint-2.pt.*No space left"):
        ckpt.save_checkpoint(d, 2, {"a": 2}, keep_last=2)
    monkeypatch.undo()
    assert [s for s, _ in ckpt.list_checkpoints(d)] == [1]
    assert sorted(p.name for p in d.iterdir()) == ["checkpoint-1.pt"]  # no temp file left
    assert ckpt.load_latest(d) == {"a": 1}


def test_keep_last_and_corrupt_latest(tmp_path):
    d = tmp_path / "ck"
    for s in range(1, 5):
        ckpt.save_checkpoint(d, s, {"step": s}, keep_last=2)
    assert [s for s, _ in ckpt.list_checkpoints(d)] == [3, 4]
    (d / "checkpoint-4.pt").write_bytes(b"garbage")
    assert ckpt.load_latest(d) == {"step": 3}


class TwoScalarModel(ToyModel):
    """ToyModel that also returns a second scalar (averaged over micro-batches like the loss)."""

    def forward(self, batch):
        return {**super().forward(batch), "w_sum": self.w.sum()}


def _twin_trainers(tmp_path, xs, **cfg):
    """Two identical trainers (same initial weights, SGD with momentum, a decaying LR, EMA)."""
    out = []
    for name in ("fit", "steps"):
        model = TwoScalarModel()
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (1 + s))
        loader = ListLoader(xs)
        tcfg = TrainConfig(progress=False, log_every=1, save_every=100, **cfg)
        run = tmp_path / name
        out.append(Trainer(model, opt, sched, loader, loader, tcfg, run, torch.device("cpu")))
    return out


def test_train_step_calls_equal_fit(tmp_path):
    """fit() is a loop over train_step(): the same batches through train_step give the same
    weights, optimiser/EMA state and logged scalars, bit for bit (with gradient accumulation,
    clipping, a scheduler, EMA and a dropped non-finite batch)."""
    gen = torch.Generator().manual_seed(0)
    xs = [torch.randn(3, generator=gen) for _ in range(7)]
    xs[3] = torch.full((3,), float("nan"))  # dropped: the step takes the next batch instead
    cfg = dict(max_steps=3, accum_grad=2, grad_clip=0.5, ema_decay=0.9, max_bad_steps=3)
    ref, mine = _twin_trainers(tmp_path, xs, **cfg)
    logged = []
    ref._log = logged.append
    ref.fit()

    phases = []
    mine.phase_hooks.append(phases.append)
    mine.model.train()
    results = [mine.train_step({"x": x, "cut_ids": ["a"]}) for x in xs]
    assert [r["updated"] for r in results] == [False, True, False, False, True, False, True]
    assert results[3]["skipped"] == "loss" and mine.step == ref.step == 3
    assert phases[:5] == ["forward", "backward", "forward", "backward", "update"]
    assert phases[5:9] == ["forward", "backward", "forward", "forward"]  # NaN: forward only
    for a, b in zip(ref.model.parameters(), mine.model.parameters()):
        assert torch.equal(a, b)
    for k, v in ref.ema_state_dict().items():
        assert torch.equal(v, mine.ema_state_dict()[k]), k
    assert torch.equal(
        ref.optimizer.state_dict()["state"][0]["momentum_buffer"],
        mine.optimizer.state_dict()["state"][0]["momentum_buffer"],
    )
    steps = [r for r in results if r["updated"]]
    assert len(logged) == len(steps) == 3
    for scalars, r in zip(logged, steps):
        assert set(r["metrics"]) == {"loss", "w_sum"}
        for k, v in r["metrics"].items():
            assert scalars[f"train/{k}"] == float(torch.tensor(v))  # fit logs float32 means
        assert scalars["train/grad_norm"] == r["grad_norm"] and scalars["train/lr"] == r["lr"]


class MatmulModel(torch.nn.Module):
    """A linear layer whose forward records the dtype its matmul ran in (autocast's choice)."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3, 1)
        self.dtypes: list[torch.dtype] = []

    def forward(self, batch):
        y = self.lin(batch["x"])
        self.dtypes.append(y.dtype)
        return {"loss": y.float().pow(2).mean()}


def _precision_trainer(tmp_path, precision):
    model = MatmulModel()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    tcfg = TrainConfig(progress=False, log_every=1, save_every=100, precision=precision)
    loader = ListLoader([])
    return Trainer(model, opt, None, loader, loader, tcfg, tmp_path, torch.device("cpu")), model


def test_precision_choice_per_device():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert uses_bf16("auto", cuda) and not uses_bf16("auto", cpu)  # safe default on CPU
    assert not uses_bf16("fp32", cuda) and not uses_bf16("fp32", cpu)
    assert uses_bf16("bf16", cuda) and uses_bf16("bf16", cpu) == native_bf16(cpu)


def test_cpu_bf16_runs_bf16_where_native_else_fp32_with_warning(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    trainer, model = _precision_trainer(tmp_path / "emulated", "bf16")
    assert "no native bf16" in caplog.text
    trainer.train_step({"x": torch.ones(2, 3), "cut_ids": ["a", "b"]})
    assert model.dtypes == [torch.float32]
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
    trainer, model = _precision_trainer(tmp_path / "native", "bf16")
    before = model.lin.weight.detach().clone()
    assert trainer.train_step({"x": torch.ones(2, 3), "cut_ids": ["a", "b"]})["updated"]
    assert model.dtypes == [torch.bfloat16]  # the matmul ran in bf16 ...
    assert model.lin.weight.dtype == torch.float32  # ... the weights stay fp32 and were updated
    assert not torch.equal(model.lin.weight, before)
