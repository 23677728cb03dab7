"""Exponential moving average (EMA) of a model's weights (``train.ema_decay``).

After every optimiser step ``ema = decay * ema + (1 - decay) * weight`` for each floating-point
parameter and buffer, kept in float32 whatever the model's dtype; integer/bool buffers (step
counters, ``batch_count``) are copied as they are. The EMA starts from the weights it is built
from. Its :meth:`EMA.state_dict` has the model's keys, so ``model.load_state_dict`` takes it.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor, nn


class EMA:
    """Float32 moving average of ``model.state_dict()``'s floating-point entries.

    Args:
        model: the (unwrapped) model; its current weights are the starting point.
        decay: in ``[0, 1)``; an average over roughly the last ``1 / (1 - decay)`` steps.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = float(decay)
        self.shadow: dict[str, Any] = {}
        self.dtypes: dict[str, torch.dtype] = {}
        self.reset(model)

    @torch.no_grad()
    def reset(self, model: nn.Module) -> None:
        """Restart the average at ``model``'s current weights."""
        self.shadow, self.dtypes = {}, {}
        for k, v in model.state_dict().items():
            if isinstance(v, Tensor):
                self.dtypes[k] = v.dtype
                v = v.detach()
                self.shadow[k] = v.float().clone() if v.is_floating_point() else v.clone()
            else:  # a module's get_extra_state() object
                self.shadow[k] = copy.deepcopy(v)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One step of the average towards ``model``'s current weights."""
        state = model.state_dict()
        if state.keys() != self.shadow.keys():
            raise ValueError(_key_diff(self.shadow.keys(), state.keys(), "the model"))
        avg, cur = [], []
        for k, v in state.items():
            s = self.shadow[k]
            if isinstance(s, Tensor) and s.is_floating_point():
                avg.append(s)
                cur.append(v.detach().to(s.dtype))
            elif isinstance(s, Tensor):
                s.copy_(v)
            else:
                self.shadow[k] = copy.deepcopy(v)
        if avg:
            torch._foreach_lerp_(avg, cur, 1.0 - self.decay)

    def state_dict(self) -> dict[str, Any]:
        """The averaged weights (float32 for floating-point entries) under the model's keys: what
        a checkpoint stores for an exact resume, and what ``model.load_state_dict`` accepts."""
        return dict(self.shadow)

    def model_state_dict(self) -> dict[str, Any]:
        """:meth:`state_dict` cast back to the model's dtypes (the same tensors for an fp32
        model)."""
        return {
            k: v.to(self.dtypes[k]) if isinstance(v, Tensor) else v for k, v in self.shadow.items()
        }

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (values are copied into place, on this EMA's device)."""
        if state.keys() != self.shadow.keys():
            raise ValueError(_key_diff(self.shadow.keys(), state.keys(), "the saved EMA"))
        for k, v in state.items():
            s = self.shadow[k]
            if isinstance(s, Tensor):
                if not isinstance(v, Tensor) or v.shape != s.shape:
                    got = tuple(v.shape) if isinstance(v, Tensor) else type(v).__name__
                    raise ValueError(
                        f"EMA entry {k}: the saved EMA has {got}, the model {tuple(s.shape)}"
                    )
                s.copy_(v)
            else:
                self.shadow[k] = copy.deepcopy(v)


def _key_diff(ours: Any, theirs: Any, what: str) -> str:
    missing = sorted(set(ours) - set(theirs))
    extra = sorted(set(theirs) - set(ours))
    return (
        f"EMA keys do not match {what}: missing there {missing[:5]}"
        f"{' ...' if len(missing) > 5 else ''}, only there {extra[:5]}"
        f"{' ...' if len(extra) > 5 else ''}"
    )
