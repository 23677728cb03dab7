"""ScaledAdam (Yao et al., Zipformer, ICLR 2024, Sec. 4): Adam whose update of each parameter
tensor is proportional to that tensor's RMS, plus an explicitly learned tensor scale and
gradient clipping against a running median of gradient norms. Registered as optimizer
``scaled_adam``; pair it with the ``eden`` scheduler (``toolkit.train.scheduler``).

For a tensor ``θ`` (more than one element) with ``r = max(RMS(θ), param_min_rms)``:

* direction: ``Δ = -lr · r · g / (sqrt(v̂) + eps)`` with ``v`` Adam's second moment of ``g``;
* scale: every ``size_update_period`` steps, ``h = Σ_t Σ(θ ⊙ g_t)`` (the gradient w.r.t. a
  log-scale on ``θ``) is normalised by its own second moment and ``Δ += -lr · scalar_lr_scale ·
  ĥ · θ``; the RMS is kept within ``[param_min_rms, param_max_rms]``;
* momentum: ``delta ← β1·delta + (1-β1)·Δ``, ``θ ← θ + delta`` (no first-moment bias
  correction: smaller first steps);
* scalars: plain Adam-normalised steps at ``lr · scalar_lr_scale``, clamped to ``±scalar_max``;
* clipping: the step's total norm ``sqrt(Σ‖r·g‖²)`` (the scale the update sees) is kept for the
  last ``clipping_update_period`` steps; once that many exist, gradients are scaled down to at
  most ``clipping_scale ×`` their median (re-estimated every period).

No weight decay: the learned scale replaces it. All state lives in ``optimizer.state`` (the
clipping history in the state of each group's first parameter), so ``state_dict`` round trips
give bit-identical next steps.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import torch
from torch import Tensor, nn

from toolkit.registry import OPTIMIZERS

log = logging.getLogger(__name__)


class ScaledAdam(torch.optim.Optimizer):
    """See the module docstring. ``params`` as for any ``torch.optim.Optimizer``."""

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict],
        lr: float = 0.045,
        betas: tuple[float, float] = (0.9, 0.98),
        eps: float = 1e-8,
        clipping_scale: float | None = 2.0,
        clipping_update_period: int = 100,
        scalar_lr_scale: float = 0.1,
        param_min_rms: float = 1e-5,
        param_max_rms: float = 3.0,
        scalar_max: float = 10.0,
        size_update_period: int = 4,
    ) -> None:
        if lr < 0:
            raise ValueError(f"scaled_adam: lr must be >= 0, got {lr}")
        if not (0.0 <= betas[0] < 1.0 and 0.0 < betas[1] < 1.0):
            raise ValueError(f"scaled_adam: betas must lie in [0, 1), got {betas}")
        if clipping_update_period < 1 or size_update_period < 1:
            raise ValueError("scaled_adam: update periods must be >= 1")
        defaults = dict(
            lr=lr,
            betas=tuple(betas),
            eps=eps,
            clipping_scale=clipping_scale,
            clipping_update_period=clipping_update_period,
            scalar_lr_scale=scalar_lr_scale,
            param_min_rms=param_min_rms,
            param_max_rms=param_max_rms,
            scalar_max=scalar_max,
            size_update_period=size_update_period,
        )
        super().__init__(params, defaults)
        self.last_clip_factor = 1.0  # factor applied to the gradients in the last step()

    # ------------------------------------------------------------------ clipping
    def _clip_factor(self, group: dict, params: list[Tensor]) -> float:
        """Factor ≤ 1 by which this step's gradients are scaled (1 during the first period)."""
        scale = group["clipping_scale"]
        gstate = self.state[group["params"][0]]
        step = gstate.setdefault("group_step", 0)
        gstate["group_step"] = step + 1
        if scale is None or not params:
            return 1.0
        period = group["clipping_update_period"]
        sumsq = torch.zeros((), device=params[0].device)
        for p in params:
            g = p.grad.float()
            st = self.state[p]
            if p.numel() > 1:
                rms = st["param_rms"] if "param_rms" in st else p.float().pow(2).mean().sqrt()
                g = g * rms
            sumsq = sumsq + g.pow(2).sum()
        norm = sumsq.sqrt()
        if "norm_history" not in gstate:
            gstate["norm_history"] = torch.zeros(period, device=norm.device)
            gstate["clip_threshold"] = torch.zeros((), device=norm.device)
        gstate["norm_history"][step % period] = norm
        if step + 1 < period:
            return 1.0
        if (step + 1) % period == 0:  # a full period of norms: re-estimate the threshold
            gstate["clip_threshold"] = scale * gstate["norm_history"].median()
            log.debug("scaled_adam: grad-norm threshold %.3e", float(gstate["clip_threshold"]))
        factor = min(1.0, float(gstate["clip_threshold"] / (norm + 1e-20)))
        if factor < 0.1:
            log.warning(
                "scaled_adam: gradients scaled by %.3g (norm %.3e, threshold %.3e)",
                factor,
                float(norm),
                float(gstate["clip_threshold"]),
            )
        return factor

    # ------------------------------------------------------------------ step
    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        """One update of every parameter that has a gradient."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            for p in params:
                if p.grad.is_sparse:
                    raise RuntimeError("scaled_adam does not support sparse gradients")
            factor = self._clip_factor(group, params)
            self.last_clip_factor = factor
            for p in params:
                grad = p.grad if factor == 1.0 else p.grad * factor
                self._update(group, p, grad, self.state[p])
        return loss

    def _update(self, group: dict, p: Tensor, grad: Tensor, st: dict) -> None:
        beta1, beta2 = group["betas"]
        lr, eps = group["lr"], group["eps"]
        if "delta" not in st:
            st["step"] = 0
            st["delta"] = torch.zeros_like(p)
            st["exp_avg_sq"] = torch.zeros_like(p)
            if p.numel() > 1:
                st["param_rms"] = p.pow(2).mean().sqrt()
                st["scale_grads"] = torch.zeros(group["size_update_period"], **_like(p))
                st["scale_exp_avg_sq"] = torch.zeros((), **_like(p))
        step = st["step"]
        delta = st["delta"]
        delta.mul_(beta1)
        exp_avg_sq = st["exp_avg_sq"]
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        denom = (exp_avg_sq / (1 - beta2 ** (step + 1))).sqrt().add_(eps)
        if p.numel() == 1:
            delta.add_(grad / denom, alpha=-lr * group["scalar_lr_scale"] * (1 - beta1))
            p.add_(delta).clamp_(-group["scalar_max"], group["scalar_max"])
            st["step"] = step + 1
            return
        period = group["size_update_period"]
        st["scale_grads"][step % period] = (p * grad).sum()
        if step % period == period - 1:
            st["param_rms"] = p.pow(2).mean().sqrt()
            if step > 0:
                self._scale_update(group, p, st)
        rms = st["param_rms"].clamp(min=group["param_min_rms"])
        delta.add_(grad / denom * rms, alpha=-lr * (1 - beta1))
        p.add_(delta)
        st["step"] = step + 1

    def _scale_update(self, group: dict, p: Tensor, st: dict) -> None:
        """Adam step on the log-scale of ``p`` from the last ``size_update_period`` gradients."""
        beta1, beta2 = group["betas"]
        period = group["size_update_period"]
        beta2p = beta2**period
        grads = st["scale_grads"]
        v = st["scale_exp_avg_sq"]
        v.mul_(beta2p).add_(grads.pow(2).mean(), alpha=1 - beta2p)
        n = (st["step"] + 1) // period
        v_hat = v / (1 - beta2p**n)
        lr = group["lr"] * group["scalar_lr_scale"]
        scale_step = -lr * grads.sum() / (v_hat.sqrt() + group["eps"])
        rms = st["param_rms"]
        if rms < group["param_min_rms"]:  # too small: may grow, never shrink further
            scale_step = scale_step.clamp(min=0.0)
        scale_step = torch.minimum(scale_step, (group["param_max_rms"] - rms) / rms)
        st["delta"].add_(p * scale_step, alpha=1 - beta1)


def _like(p: Tensor) -> dict:
    return {"device": p.device, "dtype": p.dtype}


@OPTIMIZERS.register("scaled_adam")
def scaled_adam(
    model: nn.Module,
    lr: float = 0.045,
    betas: tuple[float, float] = (0.9, 0.98),
    eps: float = 1e-8,
    clipping_scale: float | None = 2.0,
    clipping_update_period: int = 100,
    scalar_lr_scale: float = 0.1,
    param_min_rms: float = 1e-5,
    param_max_rms: float = 3.0,
    scalar_max: float = 10.0,
    size_update_period: int = 4,
) -> ScaledAdam:
    """ScaledAdam over the model's trainable parameters (one group, no weight decay).

    Its own clipping replaces the trainer's: set ``train.grad_clip: null`` with it.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    return ScaledAdam(
        params,
        lr=lr,
        betas=tuple(betas),  # type: ignore[arg-type]
        eps=eps,
        clipping_scale=clipping_scale,
        clipping_update_period=clipping_update_period,
        scalar_lr_scale=scalar_lr_scale,
        param_min_rms=param_min_rms,
        param_max_rms=param_max_rms,
        scalar_max=scalar_max,
        size_update_period=size_update_period,
    )
