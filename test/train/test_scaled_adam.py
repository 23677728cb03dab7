"""ScaledAdam and the Eden schedule: formula values, loss goes down (regression and a tiny
Zipformer), gradient clipping by the running median, RMS limits, bit-exact state round trips."""

from __future__ import annotations

import copy

import pytest
import torch
from fixtures import TINY_ZIPFORMER
from torch import nn

from toolkit.encoders.zipformer import ZipformerEncoder
from toolkit.registry import OPTIMIZERS, SCHEDULERS
from toolkit.train.scaled_adam import ScaledAdam
from toolkit.train.scheduler import eden_factor


def eden_by_hand(step: int, lr_b: float, lr_e: float, spe: int | None, warm: int) -> float:
    f = ((step * step + lr_b * lr_b) / (lr_b * lr_b)) ** -0.25
    if spe:
        e = step / spe
        f *= ((e * e + lr_e * lr_e) / (lr_e * lr_e)) ** -0.25
    return f * (0.5 + 0.5 * step / warm if step < warm else 1.0)


@pytest.mark.parametrize("spe", [None, 1000])
def test_eden_factor_values(spe):
    for step in (0, 1, 250, 499, 500, 7500, 20000, 123456):
        got = eden_factor(step, 7500, 3.5, spe, 500)
        assert got == pytest.approx(eden_by_hand(step, 7500, 3.5, spe, 500), rel=1e-12)
    assert eden_factor(0, 7500, 3.5, spe, 500) == 0.5  # warm-up starts at half the lr
    # at step = lr_batches (and no epoch term) the batch factor is 2^-1/4
    assert eden_factor(7500, 7500, 3.5, None, 500) == pytest.approx(2**-0.25)
    # at 3.5 epochs the epoch factor is 2^-1/4 as well
    assert eden_factor(3500, 1e12, 3.5, 1000, 0) == pytest.approx(2**-0.25)


def test_eden_scheduler_plugin_sets_lr_per_step():
    model = nn.Linear(3, 2)
    opt = OPTIMIZERS.build({"name": "scaled_adam", "lr": 0.04}, key="optim", model=model)
    assert isinstance(opt, ScaledAdam)
    sched = SCHEDULERS.build(
        {"name": "eden", "lr_batches": 10, "lr_epochs": 2, "steps_per_epoch": 5, "warmup_steps": 4},
        key="scheduler",
        optimizer=opt,
        total_steps=100,
    )
    for step in range(12):
        assert opt.param_groups[0]["lr"] == pytest.approx(0.04 * eden_by_hand(step, 10, 2, 5, 4))
        model(torch.randn(4, 3)).sum().backward()
        opt.step()
        opt.zero_grad()
        sched.step()


def _regression_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return ((model(x) - y) ** 2).mean()


def test_scaled_adam_reduces_regression_loss():
    torch.manual_seed(0)
    x = torch.randn(64, 8)
    y = x @ torch.randn(8, 3) + 0.5
    model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 3))
    opt = ScaledAdam(model.parameters(), lr=0.05, clipping_update_period=10)
    first = float(_regression_loss(model, x, y).detach())
    for _ in range(300):
        loss = _regression_loss(model, x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(_regression_loss(model, x, y).detach()) < 0.05 * first


def test_scaled_adam_trains_a_tiny_zipformer():
    torch.manual_seed(0)
    enc = ZipformerEncoder(
        40,
        **{**TINY_ZIPFORMER, "encoder_unmasked_dim": 12},
        dropout=0.0,
        layer_skip_rate=0.0,
        module_skip_rate=0.0,
        feature_mask_prob=0.0,
        warmup_batches=1.0,
    )
    head = nn.Linear(enc.output_dim, 2)
    model = nn.ModuleList([enc, head])
    feats, lens = torch.randn(4, 60, 40), torch.tensor([60, 55, 50, 45])
    target = torch.randn(4, 2)

    def loss_fn() -> torch.Tensor:
        h, hl = enc(feats, lens)
        pooled = h.sum(1) / hl[:, None]
        return ((head(pooled) - target) ** 2).mean()

    opt = OPTIMIZERS.build({"name": "scaled_adam", "lr": 0.03}, key="optim", model=model)
    model.train()
    first = float(loss_fn().detach())
    for _ in range(40):
        loss = loss_fn()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss_fn().detach()) < 0.3 * first


def test_clipping_by_running_median():
    p = nn.Parameter(torch.randn(10, 10))
    opt = ScaledAdam([p], lr=0.01, clipping_scale=2.0, clipping_update_period=5)
    g = torch.randn(10, 10)
    for _ in range(5):  # one period of equal norms: median = that norm, no clipping yet
        p.grad = g.clone()
        opt.step()
        assert opt.last_clip_factor == 1.0
    p.grad = 100 * g
    opt.step()  # 100× the median norm, threshold 2× the median (rms changes are tiny)
    assert opt.last_clip_factor == pytest.approx(0.02, rel=0.05)
    p.grad = g.clone()
    opt.step()
    assert opt.last_clip_factor == 1.0


def test_update_is_proportional_to_parameter_rms():
    """Same gradient, parameters 100× apart in scale → updates 100× apart (the first steps;
    scalars get plain Adam steps at lr × scalar_lr_scale)."""
    torch.manual_seed(0)
    big = nn.Parameter(torch.randn(8, 8))
    small = nn.Parameter(big.detach() * 0.01)
    scalar = nn.Parameter(torch.tensor(0.0))
    opt = ScaledAdam([big, small, scalar], lr=0.1, clipping_scale=None)
    g = torch.randn(8, 8)
    before = [big.detach().clone(), small.detach().clone()]
    big.grad, small.grad, scalar.grad = g.clone(), g.clone(), torch.tensor(3.0)
    opt.step()
    d_big, d_small = big.detach() - before[0], small.detach() - before[1]
    torch.testing.assert_close(d_big, 100 * d_small, rtol=1e-4, atol=1e-7)
    rms = float(before[0].pow(2).mean().sqrt())
    # first step: -lr (1-β1) rms g/|g| (Adam-normalised, bias-corrected second moment)
    torch.testing.assert_close(d_big, -0.1 * 0.1 * rms * g.sign(), rtol=1e-4, atol=1e-7)
    assert float(scalar.detach()) == pytest.approx(-0.1 * 0.1 * 0.1, rel=1e-4)


@pytest.mark.parametrize("foreach", [False, True])
def test_state_dict_round_trip_gives_identical_next_steps(foreach):
    """Save after 7 steps, continue 9 more; a fresh optimiser loaded from the saved state must
    produce the very same parameters (crosses clipping and size-update periods)."""
    torch.manual_seed(0)
    x, y = torch.randn(32, 6), torch.randn(32, 2)

    def make():
        torch.manual_seed(1)
        return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 2))

    def run(model, opt, steps):
        for _ in range(steps):
            opt.zero_grad()
            _regression_loss(model, x, y).backward()
            opt.step()

    kw = dict(lr=0.05, clipping_update_period=3, size_update_period=2, foreach=foreach)
    model = make()
    opt = ScaledAdam(model.parameters(), **kw)
    run(model, opt, 7)
    saved_model = copy.deepcopy(model.state_dict())
    saved_opt = copy.deepcopy(opt.state_dict())
    run(model, opt, 9)

    model2 = make()
    model2.load_state_dict(saved_model)
    opt2 = ScaledAdam(model2.parameters(), **kw)
    opt2.load_state_dict(saved_opt)
    run(model2, opt2, 9)
    for a, b in zip(model.parameters(), model2.parameters()):
        assert torch.equal(a, b)
    assert opt.state_dict()["state"].keys() == opt2.state_dict()["state"].keys()


def test_bad_arguments_are_clear():
    with pytest.raises(ValueError, match="lr must be >= 0"):
        ScaledAdam([nn.Parameter(torch.zeros(2))], lr=-1.0)
    with pytest.raises(ValueError, match="steps_per_epoch must be positive"):
        SCHEDULERS.build(
            {"name": "eden", "steps_per_epoch": 0},
            optimizer=ScaledAdam([nn.Parameter(torch.zeros(2))]),
            total_steps=10,
        )


def test_zipformer_with_scaled_adam_resumes_bit_exactly():
    """Model + optimiser + RNG state saved mid-run and restored into fresh objects continue
    identically (the encoder's random layer/module skips and its schedule counter included)."""
    feats, lens = torch.randn(3, 50, 40), torch.tensor([50, 44, 30])

    def make():
        torch.manual_seed(3)
        enc = ZipformerEncoder(40, **TINY_ZIPFORMER, warmup_batches=4.0).train()
        opt = ScaledAdam(enc.parameters(), lr=0.03, clipping_update_period=2)
        return enc, opt

    def run(enc, opt, steps):
        for _ in range(steps):
            h, _ = enc(feats, lens)
            opt.zero_grad()
            (h**2).mean().backward()
            opt.step()

    enc, opt = make()
    run(enc, opt, 3)
    saved = copy.deepcopy((enc.state_dict(), opt.state_dict(), torch.get_rng_state()))
    run(enc, opt, 4)
    enc2, opt2 = make()
    enc2.load_state_dict(saved[0])
    opt2.load_state_dict(saved[1])
    torch.set_rng_state(saved[2])
    run(enc2, opt2, 4)
    assert int(enc2.batch_count) == 7
    for a, b in zip(enc.parameters(), enc2.parameters()):
        assert torch.equal(a, b)


def _mixed_params() -> list[nn.Parameter]:
    """Matrices, vectors, scalars, one tensor below param_min_rms, one far above its max."""
    torch.manual_seed(4)
    return [
        nn.Parameter(torch.randn(6, 5)),
        nn.Parameter(torch.randn(7) * 0.1),
        nn.Parameter(torch.tensor(0.5)),
        nn.Parameter(torch.randn(3, 4, 2)),
        nn.Parameter(torch.full((4,), 1e-7)),  # RMS < param_min_rms: may only grow
        nn.Parameter(torch.tensor([-2.0])),  # one element: a scalar
        nn.Parameter(torch.randn(5, 5) * 4.0),  # RMS > param_max_rms
    ]


def _run_mixed(foreach: bool, steps: int, state: dict | None = None, start: int = 0):
    params = _mixed_params()
    kw = dict(lr=0.05, clipping_update_period=3, size_update_period=2, param_max_rms=2.0)
    opt = ScaledAdam(params, foreach=foreach, **kw)
    if state is not None:
        for p, v in zip(params, state["params"]):
            p.data.copy_(v)
        opt.load_state_dict(copy.deepcopy(state["opt"]))
    factors = []
    for i in range(start, start + steps):
        g = torch.Generator().manual_seed(100 + i)
        for j, p in enumerate(params):
            # the 4th tensor has no gradient every third step; step 9 is a gradient spike
            skip = j == 3 and i % 3 == 2
            p.grad = None if skip else torch.randn(p.shape, generator=g) * (50 if i == 9 else 1)
        opt.step()
        factors.append(opt.last_clip_factor)
    saved = {"params": [p.detach().clone() for p in params], "opt": opt.state_dict()}
    return params, factors, saved


def test_foreach_equals_the_per_tensor_reference():
    """The flat-buffer implementation follows the per-tensor loop over 16 steps that cross
    clipping and size-update periods, clip a spike, skip a gradient-less tensor and hit both
    RMS limits; only the summation order differs (float32 rounding)."""
    ref, ref_f, _ = _run_mixed(False, 16)
    new, new_f, _ = _run_mixed(True, 16)
    assert min(ref_f) < 0.2  # the spike was clipped
    assert new_f == pytest.approx(ref_f, rel=1e-5)
    for a, b in zip(ref, new):
        torch.testing.assert_close(b.detach(), a.detach(), rtol=1e-4, atol=1e-5)
    assert float(ref[4].detach().pow(2).mean().sqrt()) > 1e-7  # the tiny tensor grew
    assert float(ref[6].detach().pow(2).mean().sqrt()) <= 2.0 + 1e-4  # the big one was held


def test_checkpoints_move_between_foreach_and_reference():
    """Per-parameter state keys are the same (views into flat buffers with foreach): a state
    saved by one implementation continues in the other as in itself."""
    for first, second in ((True, False), (False, True)):
        _, _, saved = _run_mixed(first, 7)
        cont, _, _ = _run_mixed(second, 6, state=saved, start=7)
        same, _, _ = _run_mixed(first, 6, state=saved, start=7)
        for a, b in zip(same, cont):
            torch.testing.assert_close(b.detach(), a.detach(), rtol=1e-4, atol=1e-5)


def test_foreach_step_does_not_read_the_device():
    """No host sync inside step() between clipping-period boundaries (no `_local_scalar_dense`:
    each one stalls a CUDA stream) and an operator count that does not grow with the number of
    tensors (views excluded: they launch nothing)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.ops: list[str] = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if not func.is_view and func.__name__ != "detach.default":  # views launch nothing
                self.ops.append(str(func))
            return func(*args, **(kwargs or {}))

    def ops_per_step(n_tensors: int, foreach: bool) -> tuple[int, int]:
        params = [nn.Parameter(torch.randn(8, 3)) for _ in range(n_tensors)]
        opt = ScaledAdam(params, foreach=foreach, clipping_update_period=50)
        for step in range(60):  # past the first clipping period
            for p in params:
                p.grad = torch.randn(8, 3)
            if step == 56:  # not a period boundary of either schedule
                with Count() as c:
                    opt.step()
            else:
                opt.step()
        syncs = sum("_local_scalar_dense" in o for o in c.ops)
        return len(c.ops), syncs

    few, few_syncs = ops_per_step(4, True)
    many, many_syncs = ops_per_step(64, True)
    assert few_syncs == many_syncs == 0
    ref_many, ref_syncs = ops_per_step(64, False)
    assert ref_syncs > 0  # the reference reads the clipping factor on the host
    assert many == few  # flat buffers: 64 tensors cost what 4 cost
    assert ref_many > 10 * many


def test_foreach_state_survives_deepcopy_and_frees_left_out_buffers():
    """A deep-copied optimizer steps on (its flat buffers are rebuilt from the state); a tensor
    that stops getting gradients keeps its own state, not a view of the group's old buffer;
    empty and low-precision tensors are handled."""
    torch.manual_seed(0)
    big = [nn.Parameter(torch.randn(50, 40)) for _ in range(3)]
    small = nn.Parameter(torch.randn(10))
    empty = nn.Parameter(torch.zeros(0, 3))
    opt = ScaledAdam([*big, small, empty], lr=0.01, foreach=True)
    for p in opt.param_groups[0]["params"]:
        p.grad = torch.randn_like(p)
    opt.step()
    twin = copy.deepcopy(opt)
    twin.step()  # rebuilt from the copied state
    assert twin.last_clip_factor == 1.0
    small.grad = None  # small drops out of the bucket
    for p in big:
        p.grad = torch.randn_like(p)
    opt.step()
    st = opt.state[small]
    assert st["delta"].untyped_storage().nbytes() == small.numel() * 4  # its own copy
    assert opt.state[empty]["step"] == 2 and opt.state[small]["step"] == 1
    # fp16: element counts above 65,504 must not overflow the RMS computation
    half = nn.Parameter(torch.randn(300, 301).half() * 0.1)
    hopt = ScaledAdam([half], lr=0.01, foreach=True, size_update_period=1)
    half.grad = torch.randn_like(half)
    hopt.step()
    rms = float(hopt.state[half]["param_rms"])
    assert rms == pytest.approx(0.1, rel=0.05)
