"""Faults during training: a checkpoint write killed by SIGKILL, a corrupt newest checkpoint, a
full disk while saving, runs of NaN/inf losses, a data-loader sample whose file is bad, and bad
configs (unknown key, wrong type, missing include). docs/reliability.md lists what each does."""

from __future__ import annotations

import errno
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from fixtures import make_tone_corpus, write_text
from lhotse import CutSet
from lhotse.dataset import SimpleCutSampler
from test_trainer import ListLoader, make_trainer

from toolkit.config import ConfigError, load_config
from toolkit.data.dataset import CaptionDataset
from toolkit.schema import TrainConfig, train_config
from toolkit.train import checkpoint as ckpt
from toolkit.train.trainer import Trainer, TrainingError

HERE = Path(__file__).resolve().parent  # test/train: test_trainer.py
TEST_DIR = HERE.parent  # test: fixtures.py
ROOT = TEST_DIR.parent
ONES = [torch.ones(3)] * 8


def _trainer(run: Path, xs=ONES, **cfg):
    """test_trainer's toy trainer, checkpointing every 2 of 4 steps."""
    trainer, model = make_trainer(run, xs, **{"max_steps": 4, **cfg})
    trainer.cfg.save_every = 2
    return trainer, model


def _ckpt_files(run: Path) -> list[str]:
    return sorted(p.name for p in (run / "checkpoints").iterdir())


# ----------------------------------------------------------------- checkpoint writes and resume

KILLED_WRITER = """
import io, sys, time
from pathlib import Path
import torch
sys.path[:0] = [{here!r}, {test_dir!r}]
from test_trainer import make_trainer

real_save = torch.save
def half_then_hang(obj, f):  # step 4's checkpoint: half of its bytes, then wait to be killed
    if obj["trainer"]["step"] < 4:
        return real_save(obj, f)
    buf = io.BytesIO()
    real_save(obj, buf)
    f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
    f.flush()
    print("WRITING", flush=True)
    time.sleep(300)
torch.save = half_then_hang
trainer, _ = make_trainer(Path(sys.argv[1]), [torch.ones(3)] * 8, max_steps=4)
trainer.cfg.save_every = 2
trainer.fit()
"""


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_sigkill_during_checkpoint_write_keeps_previous_and_resume_uses_it(tmp_path):
    run = tmp_path / "run"
    script = tmp_path / "writer.py"
    script.write_text(KILLED_WRITER.format(here=str(HERE), test_dir=str(TEST_DIR)))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, str(script), str(run)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stdout.readline().strip() == "WRITING", "the writer ended before step 4"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGKILL
    # the killed write left only its temp file: the final name was never half-written
    assert _ckpt_files(run) == [f".checkpoint-4.pt.tmp{proc.pid}", "checkpoint-2.pt"]
    assert [s for s, _ in ckpt.list_checkpoints(run / "checkpoints")] == [2]

    trainer, model = _trainer(run)
    assert trainer.resume() and trainer.step == 2
    trainer.fit()
    assert _ckpt_files(run) == ["checkpoint-2.pt", "checkpoint-4.pt"]  # temp file cleaned up
    ref, ref_model = _trainer(tmp_path / "ref")
    ref.fit()
    assert torch.equal(model.w, ref_model.w)  # resumed = uninterrupted


def test_corrupt_newest_checkpoint_falls_back_with_a_warning(tmp_path, caplog):
    run = tmp_path / "run"
    trainer, _ = _trainer(run)
    trainer.fit()
    newest = run / "checkpoints" / "checkpoint-4.pt"
    data = newest.read_bytes()
    newest.write_bytes(data[: len(data) // 2])  # truncated (e.g. copied off a full disk)
    resumed, _ = _trainer(run)
    with caplog.at_level(logging.WARNING, logger="toolkit.train.checkpoint"):
        assert resumed.resume()
    assert resumed.step == 2
    warning = next(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert f"checkpoint {newest} is unreadable" in warning and "trying an older one" in warning


def test_no_readable_checkpoint_refuses_to_start_over(tmp_path):
    run = tmp_path / "run"
    trainer, _ = _trainer(run)
    trainer.fit()
    for p in (run / "checkpoints").iterdir():
        p.write_bytes(b"garbage")
    resumed, _ = _trainer(run)
    with pytest.raises(ckpt.CheckpointError, match=r"none of the 2 checkpoint\(s\) in .*can be"):
        resumed.resume()
    assert _trainer(tmp_path / "empty")[0].resume() is False  # no checkpoint: fresh


class _FullDisk:
    """A file whose writes fail with ENOSPC after ``room`` bytes (a disk filling up)."""

    def __init__(self, f, room: int) -> None:
        self.f, self.room = f, room

    def write(self, b) -> int:
        if len(b) > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(b)
        return self.f.write(b)

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.f.close()


@pytest.mark.parametrize("where", ["write", "fsync"])
def test_disk_full_while_saving_names_the_path_and_keeps_the_last_good(
    tmp_path, monkeypatch, where
):
    run = tmp_path / "run"
    trainer, _ = _trainer(run)
    real_open, real_fsync = open, os.fsync

    def full_open(file, mode="r", *args, **kwargs):
        f = real_open(file, mode, *args, **kwargs)
        return _FullDisk(f, 100) if "checkpoint-4" in str(file) and "w" in mode else f

    def full_fsync(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    real_save = ckpt.save_atomic

    def save_atomic(obj, path):  # fail only step 4's write
        if path.name == "checkpoint-4.pt":
            if where == "write":
                monkeypatch.setattr(ckpt, "open", full_open, raising=False)
            else:
                monkeypatch.setattr(ckpt.os, "fsync", full_fsync)
        try:
            return real_save(obj, path)
        finally:
            monkeypatch.setattr(ckpt, "open", real_open, raising=False)
            monkeypatch.setattr(ckpt.os, "fsync", real_fsync)

    monkeypatch.setattr(ckpt, "save_atomic", save_atomic)
    with pytest.raises(ckpt.CheckpointError) as e:
        trainer.fit()
    msg = str(e.value)
    target = run / "checkpoints" / "checkpoint-4.pt"
    assert f"cannot write checkpoint {target}: No space left on device (disk full)" in msg
    assert "earlier checkpoints are untouched" in msg and "\n" not in msg
    assert _ckpt_files(run) == ["checkpoint-2.pt"]  # no temp file, no partial checkpoint-4
    assert ckpt.load_latest(run / "checkpoints")["trainer"]["step"] == 2


def test_cli_prints_a_checkpoint_write_error_in_one_line(capsys):
    from toolkit.bin.common import run_cli

    def main(argv):
        raise ckpt.CheckpointError("cannot write checkpoint /x/checkpoint-4.pt: No space left")

    with pytest.raises(SystemExit) as e:
        run_cli(main, [])
    assert e.value.code == 1
    assert capsys.readouterr().err == (
        "checkpoint error: cannot write checkpoint /x/checkpoint-4.pt: No space left\n"
    )


# ----------------------------------------------------------------- NaN / inf losses


class _IdLoader(ListLoader):
    """:class:`ListLoader` with distinct cut ids per batch (``b<i>x``, ``b<i>y``)."""

    def __iter__(self):
        for i, x in enumerate(self.xs[self.skip :], self.skip):
            yield {"x": x, "cut_ids": [f"b{i}x", f"b{i}y"]}


def _id_trainer(tmp_path, xs, cfg: TrainConfig):
    trainer, model = make_trainer(tmp_path, xs)
    trainer.loader = trainer.sampler = _IdLoader(xs)
    trainer.cfg = cfg
    return trainer, model


NAN = torch.full((3,), float("nan"))
INF = torch.full((3,), float("inf"))


def test_nonfinite_batches_skip_the_update_and_streaks_reset(tmp_path, caplog):
    xs = [ONES[0], NAN, INF, ONES[0], NAN, ONES[0]]  # never 3 bad in a row
    cfg = TrainConfig(progress=False, max_steps=10, max_epochs=1, max_bad_steps=3)
    trainer, model = _id_trainer(tmp_path, xs, cfg)
    updates = []
    trainer.optimizer.register_step_post_hook(lambda *a: updates.append(trainer.step))
    with caplog.at_level(logging.WARNING, logger="toolkit.train.trainer"):
        trainer.fit()
    assert updates == [0, 1, 2] and trainer.step == 3  # one update per finite batch only
    assert torch.isfinite(model.w).all()
    warned = [r.getMessage() for r in caplog.records if "non-finite loss" in r.getMessage()]
    assert len(warned) == 3 and "cuts b1x,b1y" in warned[0] and "cuts b4x,b4y" in warned[2]


def test_nonfinite_streak_stops_naming_step_and_cut_ids(tmp_path):
    conf = tmp_path / "c.yaml"
    conf.write_text("train:\n  max_bad_steps: 2\n  progress: false\n  max_steps: 10\n")
    cfg = train_config(load_config(conf))  # the documented config key
    assert cfg.max_bad_steps == 2
    trainer, model = _id_trainer(tmp_path, [ONES[0], ONES[0], NAN, INF, ONES[0]], cfg)
    with pytest.raises(TrainingError) as e:
        trainer.fit()
    msg = str(e.value)
    assert "NaN/inf for 2 batches in a row" in msg
    assert "step 2" in msg and "cuts b3x,b3y" in msg and "train.max_bad_steps" in msg
    assert trainer.step == 2


# ----------------------------------------------------------------- bad files in the data loader


class _EpochSampler:
    """A Lhotse sampler with the trainer's ``set_epoch(epoch, skip)``."""

    def __init__(self, sampler) -> None:
        self.sampler = sampler

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.sampler.set_epoch(epoch)


class _AudioToy(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(1))

    def forward(self, batch):
        return {"loss": (self.w * batch["audio"].abs().mean() - 1.0) ** 2}


def test_bad_audio_files_are_skipped_and_counted_through_a_worker(tmp_path, caplog):
    cuts = make_tone_corpus(tmp_path / "audio", 7)
    files = [Path(c.recording.sources[0].source) for c in cuts]
    files[0].unlink()  # deleted after prepare
    files[1].write_bytes(b"RIFF\x10\x00\x00\x00WAVEgarbage" * 8)  # garbage
    files[2].write_bytes(b"")  # zero bytes
    files[3].write_text("this is a text file, not audio\n" * 20)  # text as audio
    sf.write(files[4], np.zeros(0, np.float32), 16000)  # a WAV header and no samples
    sampler = SimpleCutSampler(CutSet.from_cuts(cuts), max_cuts=5, shuffle=False)
    loader = torch.utils.data.DataLoader(
        CaptionDataset(None, seed=0), sampler=sampler, batch_size=None, num_workers=1
    )
    batches = list(loader)
    assert sum(b["num_skipped"] for b in batches) == 5
    assert [i for b in batches for i in b["skipped_ids"]] == [c.id for c in cuts[:5]]
    assert [i for b in batches for i in b["cut_ids"]] == [c.id for c in cuts[5:]]

    # the same loader under the trainer: the run goes on and counts the skipped clips
    model = _AudioToy()
    cfg = TrainConfig(progress=False, max_steps=5, max_epochs=2, log_every=1, save_every=100)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    trainer = Trainer(
        model, opt, None, loader, _EpochSampler(sampler), cfg, tmp_path / "run", torch.device("cpu")
    )
    with caplog.at_level(logging.WARNING, logger="toolkit.train.trainer"):
        trainer.fit()
    assert trainer.step == 2 and trainer.skipped_data == 10  # per epoch: 1 batch, 5 bad clips
    assert "10 clips were skipped by the data loader" in caplog.text
    log_rows = (tmp_path / "run" / "train_log.csv").read_text().splitlines()
    assert "2,data/skipped_total,10" in log_rows


# ----------------------------------------------------------------- bad configs


def test_config_unknown_key_names_key_and_file(tmp_path):
    write_text(tmp_path / "base.yaml", "train:\n  max_steps: 5\n  max_bad_step: 3\n")
    main = write_text(tmp_path / "main.yaml", "include: base.yaml\nseed: 1\n")
    with pytest.raises(ConfigError) as e:
        train_config(load_config(main))
    msg = str(e.value)  # the included file that holds the typo, its line, the key, the options
    assert msg.startswith(f"{tmp_path.resolve() / 'base.yaml'}:3: train.max_bad_step: unknown key")
    assert "max_bad_steps" in msg


def test_config_wrong_type_names_key_and_file(tmp_path):
    p = write_text(tmp_path / "a.yaml", "train:\n  max_bad_steps: many\n")
    with pytest.raises(ConfigError) as e:
        train_config(load_config(p))
    assert str(e.value) == (f"{p.resolve()}:2: train.max_bad_steps: expected int, got 'many' (str)")
    p = write_text(tmp_path / "b.yaml", "seed: 1\ntrain: 5\n")
    with pytest.raises(ConfigError, match=r"b\.yaml:2: train: expected a mapping of keys, got 5"):
        train_config(load_config(p))


def test_config_missing_include_names_the_including_file(tmp_path):
    p = write_text(tmp_path / "main.yaml", "seed: 1\ninclude: [conf/base.yaml]\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    msg = str(e.value)
    assert msg.startswith(f"{p.resolve()}:2: include: cannot read config conf/base.yaml")
    assert str(tmp_path.resolve() / "conf" / "base.yaml") in msg
    p = write_text(tmp_path / "bad.yaml", "include: {a: 1}\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml:1: include: expected a file name"):
        load_config(p)
