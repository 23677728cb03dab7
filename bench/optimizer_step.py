#!/usr/bin/env python3
"""Optimizer-step benchmark: ScaledAdam's flat-buffer (``foreach``) path against its per-tensor
reference and torch's AdamW (``foreach=True``), on the parameters of a real model.

The model is built from a config exactly as ``bench/pretrain_throughput.py`` builds it (default:
the paper contrastive preset, Zipformer-M + BERT-base text tower; ``--tiny``: the tiny preset).
Every trainable parameter gets a fixed random gradient; each optimizer then runs ``--warmup``
untimed steps (past ScaledAdam's first clipping period, so clipping is active) and ``--repeats``
timed steps, synchronised. Printed per optimizer: median / min step ms, operators dispatched per
step (views excluded — on a GPU each one is at least one kernel launch), host syncs per step
(``_local_scalar_dense`` of a device tensor; none on a CPU), the peak device memory of a step above the resident state (CUDA), and
the ratio of the reference's median to each row's, all measured in one process, and the largest
parameter difference from the reference after the same steps (flat vs loop: float rounding only).

    python bench/optimizer_step.py                  # the paper model, cuda if available
    python bench/optimizer_step.py --tiny --device cpu --repeats 3 --json /tmp/opt.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))


def _load_throughput_bench() -> Any:
    spec = importlib.util.spec_from_file_location(
        "pretrain_throughput", HERE / "pretrain_throughput.py"
    )
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules["pretrain_throughput"] = mod
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


pt = _load_throughput_bench()  # model building, sync and logging shared with that bench


class CountOps(TorchDispatchMode):
    """Counts dispatched operators (views excluded) and host reads of device scalars (always 0 on
    a CPU, where reading a scalar waits for nothing)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops = 0
        self.syncs = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[override]
        if not func.is_view and func.__name__ != "detach.default":
            self.ops += 1
        if "_local_scalar_dense" in func.__name__ and args[0].device.type != "cpu":
            self.syncs += 1  # a device → host read: the host waits for the stream
        return func(*args, **(kwargs or {}))


def make_optimizer(name: str, params: list[torch.nn.Parameter], lr: float) -> torch.optim.Optimizer:
    from toolkit.train.scaled_adam import ScaledAdam

    if name == "scaled_adam":
        return ScaledAdam(params, lr=lr, foreach=True, clipping_update_period=8)
    if name == "scaled_adam-reference":
        return ScaledAdam(params, lr=lr, foreach=False, clipping_update_period=8)
    if name == "adamw-foreach":
        return torch.optim.AdamW(params, lr=1e-4, foreach=True)
    raise SystemExit(f"unknown optimizer {name!r}")


def measure(
    name: str, params: list[torch.nn.Parameter], device: torch.device, warmup: int, repeats: int
) -> dict[str, Any]:
    """Median/min step ms, ops and syncs per step, peak extra memory; parameters restored after."""
    saved = [p.detach().clone() for p in params]
    opt = make_optimizer(name, params, lr=0.045)
    for _ in range(warmup):
        opt.step()
    pt.sync(device)
    with CountOps() as counted:
        opt.step()
    pt.sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        opt.step()
        pt.sync(device)
        times.append(1000 * (time.perf_counter() - t0))
    peak = (
        (torch.cuda.max_memory_allocated(device) - base) / 2**30 if device.type == "cuda" else None
    )
    with torch.no_grad():
        final = [p.detach().to("cpu", copy=True) for p in params]
        for p, s in zip(params, saved):
            p.copy_(s)
    del opt
    return {
        "optimizer": name,
        "step_ms": statistics.median(times),
        "step_ms_min": min(times),
        "ops_per_step": counted.ops,
        "syncs_per_step": counted.syncs,
        "peak_extra_gib": peak,
        "final": final,  # parameters after the run (compared across optimizers, then dropped)
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("overrides", nargs="*", help="config overrides key=value (as for train)")
    p.add_argument("--config", type=Path, help="experiment YAML (default: the paper preset)")
    p.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"))
    p.add_argument("--tiny", action="store_true", help="the tiny preset of pretrain_throughput")
    p.add_argument("--warmup", type=int, default=10, help="untimed steps (default 10)")
    p.add_argument("--repeats", type=int, default=10, help="timed steps (default 10)")
    p.add_argument(
        "--optimizers",
        default="scaled_adam-reference,scaled_adam,adamw-foreach",
        help="comma list of scaled_adam-reference, scaled_adam, adamw-foreach",
    )
    p.add_argument("--json", type=Path, help="write the rows and metadata here")
    args = p.parse_args(argv)
    device = torch.device(
        ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    )
    pt.require_lhotse()
    config = args.config or REPO / pt.PAPER_CONF["contrastive"]
    with tempfile.TemporaryDirectory() as tmp:
        cfg, tokenizer, notes = pt.prepare_config(
            config, "contrastive", args.tiny, args.overrides, Path(tmp)
        )
        from toolkit.model import build_model

        torch.manual_seed(0)
        model = build_model(cfg, tokenizer).to(device)
    params = [q for q in model.parameters() if q.requires_grad]
    gen = torch.Generator(device="cpu").manual_seed(0)
    for q in params:
        q.grad = (torch.randn(q.shape, generator=gen) * 1e-3).to(device)
    numel = sum(q.numel() for q in params)
    rows = []
    for name in args.optimizers.split(","):
        rows.append(measure(name.strip(), params, device, args.warmup, args.repeats))
        pt.log(f"{name}: {rows[-1]['step_ms']:.1f} ms")
    ref_row = next((r for r in rows if r["optimizer"] == "scaled_adam-reference"), None)
    ref = ref_row["step_ms"] if ref_row else None
    for r in rows:
        r["speedup_vs_reference"] = ref / r["step_ms"] if ref else None
        # the same steps from the same parameters and gradients: the flat path must land where
        # the reference does (float rounding only); AdamW is a different algorithm (no check)
        r["max_abs_diff_vs_reference"] = (
            max(float((a - b).abs().max()) for a, b in zip(r["final"], ref_row["final"]))
            if ref_row and r["optimizer"].startswith("scaled_adam")
            else None
        )
    for r in rows:
        del r["final"]
    meta = {
        "device": pt._device_name(device),
        "torch": torch.__version__,
        "config": str(config),
        "tensors": len(params),
        "parameters": numel,
        "threads": torch.get_num_threads(),
        "notes": notes,
        "command": " ".join(sys.argv),
    }
    print(f"{meta['device']}, {len(params)} tensors, {numel / 1e6:.1f} M parameters")
    print(
        "| optimizer | step ms (median) | min | ops/step | syncs/step | peak extra GiB "
        "| vs reference | max abs diff vs reference |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        peak = "-" if r["peak_extra_gib"] is None else f"{r['peak_extra_gib']:.2f}"
        ratio = "-" if r["speedup_vs_reference"] is None else f"{r['speedup_vs_reference']:.2f}×"
        diff = r["max_abs_diff_vs_reference"]
        print(
            f"| {r['optimizer']} | {r['step_ms']:.1f} | {r['step_ms_min']:.1f} | "
            f"{r['ops_per_step']} | {r['syncs_per_step']} | {peak} | {ratio} | "
            f"{'-' if diff is None else f'{diff:.2e}'} |"
        )
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
