"""Shared harness for "2-process DDP (gloo) equals one process" tests: each rank runs one
forward/backward on its slice of a global batch; the test compares every rank's result with the
single-process loss and gradients."""

from __future__ import annotations

import gc
import os
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

WORLD = 2


def grads_by_name(model: nn.Module) -> dict[str, torch.Tensor]:
    """``{parameter name: a copy of its gradient}`` of the parameters that have one."""
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def single_process_step(model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict]:
    """``model(batch)["loss"].backward()`` in this process: the loss and :func:`grads_by_name`,
    the reference that :func:`spawn_and_compare` holds the ranks to."""
    out = model(batch)
    out["loss"].backward()
    return out["loss"], grads_by_name(model)


def ddp_step_and_save(
    rank: int, init_file: str, out_dir: str, model: nn.Module, part: dict
) -> None:
    """In a spawned rank: wrap ``model`` in DDP, run ``model(part)["loss"].backward()`` and save
    the mean loss over ranks and this rank's (DDP-averaged) gradients to ``rank{rank}.pt``."""
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    torch.set_num_threads(1)
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    out = ddp(part)
    out["loss"].backward()
    loss = out["loss"].detach().clone()
    dist.all_reduce(loss)
    grads = grads_by_name(ddp.module)
    torch.save({"loss": loss / WORLD, "grads": grads}, os.path.join(out_dir, f"rank{rank}.pt"))
    # DDP goes first (see toolkit/bin/train.py: freeing its reducer after the group can hang)
    del ddp, out
    gc.collect()
    dist.destroy_process_group()


def spawn_and_compare(worker, tmp_path: Path, loss: torch.Tensor, ref: dict) -> None:
    """Run ``worker(rank, init_file, out_dir)`` on 2 processes; every rank's loss must equal
    ``loss`` and its gradients ``ref`` (same parameter names)."""
    mp.spawn(worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD, join=True)
    for rank in range(WORLD):
        res = torch.load(tmp_path / f"rank{rank}.pt")
        assert abs(float(res["loss"]) - float(loss.detach())) < 1e-5
        assert set(res["grads"]) == set(ref)
        for name, g in ref.items():
            torch.testing.assert_close(res["grads"][name], g, rtol=1e-4, atol=1e-6, msg=name)
