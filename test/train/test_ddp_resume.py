"""DDP checkpoints (2 gloo processes): every rank's RNG state and the world size are saved; a
resume on the same world size gives each rank its own state back, a resume on one process
continues at the same global batch position with a warning."""

from __future__ import annotations

import logging
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from test_trainer import ToyModel

from toolkit.schema import TrainConfig
from toolkit.train import checkpoint as ckpt
from toolkit.train.trainer import Trainer

WORLD = 2


class Loader:
    """Ten batches; ``set_epoch(epoch, skip)`` records the skip like the real sampler."""

    def __init__(self) -> None:
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.skip = skip

    def __iter__(self):
        for i in range(self.skip, 10):
            yield {"x": torch.full((3,), 0.1 * (i + 1)), "cut_ids": [str(i)]}


def make_trainer(run_dir: str, max_steps: int) -> Trainer:
    model = ToyModel()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    cfg = TrainConfig(progress=False, log_every=100, save_every=2, max_steps=max_steps)
    loader = Loader()
    return Trainer(model, opt, None, loader, loader, cfg, run_dir, torch.device("cpu"))


def _init(rank: int, init_file: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    torch.set_num_threads(1)


def train_worker(rank: int, init_file: str, run_dir: str) -> None:
    _init(rank, init_file)
    torch.manual_seed(100 + rank)  # per-rank streams, as toolkit.bin.train seeds them
    make_trainer(run_dir, max_steps=2).fit()
    torch.save(torch.get_rng_state(), os.path.join(run_dir, f"rng{rank}.pt"))
    dist.destroy_process_group()


def resume_worker(rank: int, init_file: str, run_dir: str) -> None:
    _init(rank, init_file)
    torch.manual_seed(7)  # overwritten by the resume
    trainer = make_trainer(run_dir, max_steps=4)
    assert trainer.resume()
    torch.save(
        {"rng": torch.get_rng_state(), "batch": trainer.batch_in_epoch},
        os.path.join(run_dir, f"resumed{rank}.pt"),
    )
    dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_ddp_checkpoint_keeps_every_rank_and_resumes_on_any_world_size(tmp_path, caplog):
    run = tmp_path / "run"
    mp.spawn(train_worker, args=(str(tmp_path / "init1"), str(run)), nprocs=WORLD, join=True)
    state = ckpt.load_latest(run / "checkpoints")
    assert state["world_size"] == WORLD and state["trainer"]["batch_in_epoch"] == 2
    saved = [torch.load(run / f"rng{r}.pt") for r in range(WORLD)]
    assert not torch.equal(saved[0], saved[1])
    for r in range(WORLD):
        assert torch.equal(state["rng_per_rank"][r]["torch"], saved[r])

    # same world size: each rank gets its own stream back, position unchanged
    mp.spawn(resume_worker, args=(str(tmp_path / "init2"), str(run)), nprocs=WORLD, join=True)
    for r in range(WORLD):
        res = torch.load(run / f"resumed{r}.pt")
        assert torch.equal(res["rng"], saved[r]) and res["batch"] == 2

    # one process: rank 0's stream, the same global position (2 batches × 2 ranks)
    trainer = make_trainer(str(run), max_steps=4)
    with caplog.at_level(logging.WARNING, logger="toolkit.train.trainer"):
        assert trainer.resume()
    assert trainer.batch_in_epoch == 4
    assert torch.equal(torch.get_rng_state(), saved[0])
    assert "resuming a 2-rank checkpoint on 1 ranks" in caplog.text
    trainer.fit()
    assert trainer.step == 4
