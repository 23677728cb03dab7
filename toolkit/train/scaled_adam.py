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

Two implementations of the same update (``foreach``):

* ``True`` (default on CUDA): flat buffers. The parameters of a group that share device, dtype
  and step count are concatenated; per-tensor sums and factors are one operation per run of
  equal-size tensors viewed as ``(n, numel)``. A step dispatches 240 operators for the 920
  tensors of Zipformer-M + BERT-base (the loop: 16,483; on a GPU each is a kernel launch) and
  never waits for the device: the clipping factor stays a tensor, and whether it fell below 0.1
  is read once per clipping period.
* ``False`` (default elsewhere): a loop over tensors, the readable reference the tests compare
  against; two host syncs per step. On a CPU it is the faster one (each tensor's ops run while
  it is in cache): 0.76 s against 0.89 s per step for those 176 M parameters on 2 cores
  (``bench/optimizer_step.py``).

Both keep the same per-parameter state keys (with flat buffers they are views into them), so
checkpoints move between the two.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

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
        foreach: bool | None = None,
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
            foreach=foreach,
        )
        super().__init__(params, defaults)
        self._last_factor: float | Tensor = 1.0
        # foreach: per group (by id), the flat buckets keyed by their parameters' ids
        self._flat: dict[int, dict[tuple[int, ...], _FlatBucket]] = {}

    @property
    def last_clip_factor(self) -> float:
        """Factor applied to the gradients in the last ``step()`` (reading it syncs the device)."""
        return float(self._last_factor)

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        self._flat = {}  # the state tensors are new: flat buffers are rebuilt from them

    def __setstate__(self, state: dict) -> None:  # copy.deepcopy / pickle keep only the state
        super().__setstate__(state)
        self._flat = {}
        self._last_factor = 1.0

    # ------------------------------------------------------------------ clipping
    def _group_step(self, group: dict) -> tuple[dict, int]:
        """The state holding the group's clipping history, and this step's index (advanced)."""
        gstate = self.state[group["params"][0]]
        step = gstate.setdefault("group_step", 0)
        gstate["group_step"] = step + 1
        return gstate, step

    def _clip_threshold(self, group: dict, gstate: dict, step: int, norm: Tensor) -> Tensor | None:
        """Record this step's gradient norm; the threshold (``clipping_scale`` × the median of the
        last period, re-estimated at the end of each period), or None during the first period.
        Shared by both implementations."""
        period = group["clipping_update_period"]
        if "norm_history" not in gstate:
            gstate["norm_history"] = torch.zeros(period, device=norm.device)
            gstate["clip_threshold"] = torch.zeros((), device=norm.device)
        gstate["norm_history"][step % period] = norm
        if step + 1 < period:
            return None
        if (step + 1) % period == 0:  # a full period of norms: re-estimate the threshold
            gstate["clip_threshold"] = group["clipping_scale"] * gstate["norm_history"].median()
            if log.isEnabledFor(logging.DEBUG):
                log.debug("scaled_adam: grad-norm threshold %.3e", float(gstate["clip_threshold"]))
        return gstate["clip_threshold"]

    def _clip_factor(self, group: dict, params: list[Tensor]) -> float:
        """Factor ≤ 1 by which this step's gradients are scaled (1 during the first period)."""
        gstate, step = self._group_step(group)
        if group["clipping_scale"] is None or not params:
            return 1.0
        sumsq = torch.zeros((), device=params[0].device)
        for p in params:
            g = p.grad.float()
            st = self.state[p]
            if p.numel() > 1:
                rms = st["param_rms"] if "param_rms" in st else p.float().pow(2).mean().sqrt()
                g = g * rms
            sumsq = sumsq + g.pow(2).sum()
        norm = sumsq.sqrt()
        threshold = self._clip_threshold(group, gstate, step, norm)
        if threshold is None:
            return 1.0
        factor = min(1.0, float(threshold / (norm + 1e-20)))
        if factor < 0.1:
            log.warning(
                "scaled_adam: gradients scaled by %.3g (norm %.3e, threshold %.3e)",
                factor,
                float(norm),
                float(threshold),
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
            foreach = group.get("foreach")
            if foreach is None:  # auto: flat buffers where kernel launches cost (CUDA)
                foreach = bool(params) and all(p.device.type == "cuda" for p in params)
            if foreach:
                self._foreach_group_step(group, params)
                continue
            factor = self._clip_factor(group, params)
            self._last_factor = factor
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
        if p.numel() <= 1:  # scalars (and empty tensors: nothing to scale)
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

    # ------------------------------------------------------------------ foreach (flat buffers)
    def _buckets(self, group: dict, params: list[Tensor]) -> list[_FlatBucket]:
        """The group's parameters with gradients, split by (device, dtype, tensor/scalar, step);
        state created or re-flattened where the cached buffers do not hold the same split."""
        split: dict[tuple, list[Tensor]] = {}
        for p in params:
            key = (p.device, p.dtype, p.numel() > 1, self.state[p].get("step", 0))
            split.setdefault(key, []).append(p)
        cache = self._flat.setdefault(id(group), {})
        buckets = {}
        for (_, _, tensors, _), ps in split.items():
            ids = tuple(id(p) for p in ps)
            b = cache.get(ids)
            buckets[ids] = b if b is not None else _FlatBucket.build(ps, self.state, group, tensors)
        if buckets.keys() != cache.keys():
            # parameters left out of every bucket (no gradient this step) get their own copies of
            # their state: as views they would keep a whole old buffer alive
            kept = {id(p) for ids in buckets for p in buckets[ids].params}
            for ids, b in cache.items():
                if ids not in buckets:
                    for p in b.params:
                        if id(p) not in kept:
                            st = self.state[p]
                            for k, v in st.items():
                                if isinstance(v, Tensor):
                                    st[k] = v.clone()
        self._flat[id(group)] = buckets
        return list(buckets.values())

    def _foreach_clip_factor(self, group: dict, buckets: list[_FlatBucket]) -> Tensor | None:
        """As ``_clip_factor`` without host syncs: ``None`` (no scaling) or a 0-d tensor."""
        gstate, step = self._group_step(group)
        if group["clipping_scale"] is None or not buckets:
            return None
        period = group["clipping_update_period"]
        sq = []
        for b in buckets:
            norms = torch.stack(torch._foreach_norm([p.grad for p in b.params])).float()
            if b.rms is not None:
                norms = norms * b.rms.float()
            sq.append(norms.pow(2).sum())
        norm = torch.stack(sq).sum().sqrt()
        if "factor_history" not in gstate:
            gstate["factor_history"] = torch.ones(period, device=norm.device)
        threshold = self._clip_threshold(group, gstate, step, norm)
        if threshold is None:
            return None
        if (step + 1) % period == 0:
            self._warn_strong_clipping(gstate["factor_history"], period)
        factor = (threshold / (norm + 1e-20)).clamp(max=1.0)
        gstate["factor_history"][step % period] = factor
        return factor

    @staticmethod
    def _warn_strong_clipping(factors: Tensor, period: int) -> None:
        """One host sync per clipping period: warn if gradients were scaled below 0.1."""
        low = int((factors < 0.1).sum())
        if low:
            log.warning(
                "scaled_adam: gradients scaled by < 0.1 in %d of the last %d steps (min %.3g)",
                low,
                period,
                float(factors.min()),
            )
        factors.fill_(1.0)

    def _foreach_group_step(self, group: dict, params: list[Tensor]) -> None:
        buckets = self._buckets(group, params)
        factor = self._foreach_clip_factor(group, buckets)
        self._last_factor = 1.0 if factor is None else factor
        beta1, beta2 = group["betas"]
        lr, eps = group["lr"], group["eps"]
        for b in buckets:
            step = self.state[b.params[0]].get("step", 0)
            g = torch.cat([p.grad.reshape(-1) for p in b.params])
            if g.dtype != b.delta.dtype:
                g = g.to(b.delta.dtype)
            if factor is not None:
                g.mul_(factor.to(g.dtype))
            b.delta.mul_(beta1)
            b.exp_avg_sq.mul_(beta2).addcmul_(g, g, value=1 - beta2)
            bias = 1 - beta2 ** (step + 1)
            if b.rms is None:  # scalars: plain Adam-normalised steps
                denom = b.exp_avg_sq.div(bias).sqrt_().add_(eps)
                b.delta.addcdiv_(g, denom, value=-lr * group["scalar_lr_scale"] * (1 - beta1))
            else:
                self._flat_tensor_update(group, b, g, bias, step)
            torch._foreach_add_(b.params, b.delta_views)
            if b.rms is None:
                torch._foreach_clamp_min_(b.params, -group["scalar_max"])
                torch._foreach_clamp_max_(b.params, group["scalar_max"])
            for p in b.params:
                self.state[p]["step"] = step + 1

    def _flat_tensor_update(
        self, group: dict, b: _FlatBucket, g: Tensor, bias: float, step: int
    ) -> None:
        """``_update`` + ``_scale_update`` for every (non-scalar) tensor of ``b`` at once:
        updates ``b.delta`` (the parameters are not touched here)."""
        beta1, beta2 = group["betas"]
        period = group["size_update_period"]
        x = torch.cat([p.detach().reshape(-1) for p in b.params])
        b.scale_grads[:, step % period] = b.segment_dot(x, g)
        if step % period == period - 1:
            b.rms.copy_(b.segment_dot(x, x).div_(b.numels).sqrt_())  # cast to the state dtype
            if step > 0:
                beta2p = beta2**period
                b.scale_exp_avg_sq.mul_(beta2p).add_(b.scale_grads.pow(2).mean(1), alpha=1 - beta2p)
                n = (step + 1) // period
                v_hat = b.scale_exp_avg_sq / (1 - beta2p**n)
                lr = group["lr"] * group["scalar_lr_scale"]
                scale_step = -lr * b.scale_grads.sum(1) / (v_hat.sqrt() + group["eps"])
                rms = b.rms
                scale_step = torch.where(
                    rms < group["param_min_rms"], scale_step.clamp(min=0.0), scale_step
                )
                scale_step = torch.minimum(scale_step, (group["param_max_rms"] - rms) / rms)
                b.delta.add_(b.mul_per_param_(x, scale_step), alpha=1 - beta1)
        del x  # transient memory: at most g, x and one run's products, then g and denom
        denom = b.exp_avg_sq.div(bias).sqrt_().add_(group["eps"])
        rms = b.rms.clamp(min=group["param_min_rms"])
        b.delta.addcdiv_(b.mul_per_param_(g, rms), denom, value=-group["lr"] * (1 - beta1))


@dataclass
class _FlatBucket:
    """Flat optimiser state of parameters sharing device, dtype and step count. The
    per-parameter entries of ``optimizer.state`` are views into these buffers."""

    params: list[Tensor]  # sorted by size
    runs: list[tuple[int, int, int, int, int]]  # (first elem, end elem, first param, end, numel)
    numels: Tensor  # (N,) float32 (a bf16/fp16 count would round or overflow)
    delta: Tensor  # (total,)
    exp_avg_sq: Tensor  # (total,)
    delta_views: list[Tensor]  # ``delta`` split and shaped like ``params``
    rms: Tensor | None  # (N,) tensors only
    scale_grads: Tensor | None  # (N, size_update_period)
    scale_exp_avg_sq: Tensor | None  # (N,)

    @classmethod
    def build(cls, params: list[Tensor], state: dict, group: dict, tensors: bool) -> _FlatBucket:
        """Concatenate existing per-parameter state (zeros / the current RMS where there is
        none yet) and point the per-parameter entries at the new buffers."""
        like = _like(params[0])
        params = sorted(params, key=lambda p: p.numel())  # equal sizes side by side
        lengths = [p.numel() for p in params]
        numels = torch.tensor(lengths, dtype=torch.float32).to(like["device"])
        period = group["size_update_period"]

        def cat(key: str, shape: tuple[int, ...], init) -> Tensor:
            parts = []
            for p in params:
                st = state[p]
                v = st[key] if key in st else init(p)
                parts.append(v.reshape(shape) if shape else v.reshape(-1))
            return torch.cat(parts).to(**like)

        fresh = [p for p in params if "delta" not in state[p]]
        delta = cat("delta", (), torch.zeros_like)
        exp_avg_sq = cat("exp_avg_sq", (), torch.zeros_like)
        rms = scale_grads = scale_v = None
        if tensors:
            rms = cat("param_rms", (1,), lambda p: p.detach().pow(2).mean().sqrt())
            scale_grads = cat("scale_grads", (1, period), lambda p: torch.zeros(period, **like))
            scale_v = cat("scale_exp_avg_sq", (1,), lambda p: torch.zeros((), **like))
        runs, start, first = [], 0, 0
        for i in range(1, len(params) + 1):
            if i == len(params) or lengths[i] != lengths[first]:
                end = start + (i - first) * lengths[first]
                runs.append((start, end, first, i, lengths[first]))
                start, first = end, i
        b = cls(
            params=params,
            runs=runs,
            numels=numels,
            delta=delta,
            exp_avg_sq=exp_avg_sq,
            delta_views=[d.view_as(p) for d, p in zip(delta.split(lengths), params)],
            rms=rms,
            scale_grads=scale_grads,
            scale_exp_avg_sq=scale_v,
        )
        for p in fresh:
            state[p]["step"] = 0
        for i, (p, d, v) in enumerate(zip(params, delta.split(lengths), exp_avg_sq.split(lengths))):
            st = state[p]
            st["delta"], st["exp_avg_sq"] = d.view_as(p), v.view_as(p)
            if tensors:
                st["param_rms"] = rms[i]
                st["scale_grads"] = scale_grads[i]
                st["scale_exp_avg_sq"] = scale_v[i]
        return b

    def segment_dot(self, x: Tensor, y: Tensor) -> Tensor:
        """(total,), (total,) → (N,) float32: ``Σ x·y`` over each parameter's elements, one
        ``vecdot`` per run of equal-size parameters viewed as ``(n, numel)`` (no full-size
        product is materialised)."""
        out = []
        for a, e, _, _, m in self.runs:
            xv, yv = x[a:e].view(-1, m), y[a:e].view(-1, m)
            if xv.dtype != torch.float32:  # accumulate low-precision parameters in float32
                xv, yv = xv.float(), yv.float()
            out.append(torch.linalg.vecdot(xv, yv))
        return torch.cat(out)

    def mul_per_param_(self, x: Tensor, v: Tensor) -> Tensor:
        """``x`` (total,) times each parameter's ``v`` (N,), in place, by broadcasting."""
        for a, e, i, j, m in self.runs:
            x[a:e].view(-1, m).mul_(v[i:j, None])
        return x


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
    foreach: bool | None = None,
) -> ScaledAdam:
    """ScaledAdam over the model's trainable parameters (one group, no weight decay).

    Its own clipping replaces the trainer's: set ``train.grad_clip: null`` with it.
    ``foreach``: ``null`` (default) = flat buffers on CUDA, the per-tensor loop elsewhere;
    ``true`` / ``false`` force one (same results up to float rounding).
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
        foreach=foreach,
    )
