"""Process-group helpers and an all-gather that keeps gradients and allows unequal batch sizes.

Used by contrastive objectives (negatives from every rank) and by the trainer (DDP set-up).
Works with gloo (CPU tests) and NCCL (GPU).
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor


def is_distributed() -> bool:
    """True inside an initialised process group with more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def init_from_env(device: torch.device) -> bool:
    """Initialise the default process group from torchrun's env vars (``WORLD_SIZE`` > 1).

    Returns True if a process group is in use. Backend: NCCL on CUDA devices, gloo otherwise.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    return True


def all_gather_objects(obj: Any) -> list[Any]:
    """Every rank's picklable ``obj`` in rank order (``[obj]`` without DDP). A collective: every
    rank must call it."""
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


class _GatherVariable(torch.autograd.Function):
    """Forward: all-gather ``(B_r, ...)`` tensors of different ``B_r``; backward: each rank gets
    the sum over ranks of the gradient w.r.t. its own rows (an all-reduce, so any backend)."""

    @staticmethod
    def forward(ctx, x: Tensor, sizes: list[int]) -> Tensor:  # type: ignore[override]
        r, max_b = dist.get_rank(), max(sizes)
        padded = x.new_zeros((max_b, *x.shape[1:]))
        padded[: x.shape[0]] = x
        chunks = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(chunks, padded.contiguous())
        ctx.sizes, ctx.rank = sizes, r
        return torch.cat([c[:n] for c, n in zip(chunks, sizes)], dim=0)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = sum(ctx.sizes[: ctx.rank])
        return grad[start : start + ctx.sizes[ctx.rank]], None


def gather_sizes(n: int, device: torch.device) -> list[int]:
    """Local batch sizes of every rank (one small all-gather)."""
    t = torch.tensor([n], device=device, dtype=torch.long)
    out = [torch.zeros_like(t) for _ in range(world_size())]
    dist.all_gather(out, t)
    return [int(o.item()) for o in out]


def gather_with_grad(x: Tensor, sizes: list[int] | None = None) -> tuple[Tensor, int]:
    """All ranks' rows of ``x`` ``(B_r, ...)`` concatenated in rank order ``(ΣB, ...)``, with
    gradients flowing back to their owners; also returns the offset of this rank's rows.
    Without a process group it returns ``(x, 0)``."""
    if not is_distributed():
        return x, 0
    sizes = sizes or gather_sizes(x.shape[0], x.device)
    return _GatherVariable.apply(x, sizes), sum(sizes[: dist.get_rank()])


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank when ``flag`` is true on at least one (one all-reduce)."""
    t = torch.tensor(float(flag), device=device)
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
    return bool(t.item())


def all_reduce_mean(x: Tensor) -> Tensor:
    """Mean over ranks (no grad), identity without a process group."""
    if not is_distributed():
        return x
    y = x.detach().clone()
    dist.all_reduce(y, op=dist.ReduceOp.SUM)
    return y / world_size()
