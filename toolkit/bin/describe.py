"""Describe the frontend + encoder of a config: parameter counts, frame rates, output dim.

``python -m toolkit.bin.describe egs/TEMPLATE/conf/encoder/zipformer_m.yaml [key=value ...]``

Configs go through :func:`toolkit.config.load_config` (includes, dotted overrides); a config
without a ``frontend`` section gets ``{name: fbank, num_mel_bins: 80}``. The output frame rate is
measured by running ``--seconds`` (10) of random audio through frontend and encoder (eval mode,
no gradients); the forward time of that run is printed too.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch
from torch import nn

from toolkit.bin.common import run_cli
from toolkit.config import ConfigError, load_config
from toolkit.registry import ENCODERS, FRONTENDS, import_plugins
from toolkit.schema import check_top_level
from toolkit.weights import split_init_keys

DEFAULT_FRONTEND = {"name": "fbank", "num_mel_bins": 80}


def count(module: nn.Module) -> int:
    """Number of parameters (trainable or not)."""
    return sum(p.numel() for p in module.parameters())


def param_table(name: str, module: nn.Module) -> list[tuple[str, int]]:
    """``[(name, count)]`` for the module and each top-level child (a ``ModuleList`` child, or
    one held by a child, e.g. the Zipformer's ``encoder.encoders``, is broken down into its
    items)."""
    rows = [(name, count(module))]
    for child_name, child in module.named_children():
        rows.append((f"  {child_name}", count(child)))
        lists = [(child_name, child)] if isinstance(child, nn.ModuleList) else [
            (f"{child_name}.{n}", m) for n, m in child.named_children() if isinstance(m, nn.ModuleList)
        ]  # fmt: skip
        for list_name, items in lists:
            rows += [(f"    {list_name}.{i}", count(m)) for i, m in enumerate(items)]
    return rows


@torch.no_grad()
def describe(cfg: dict[str, Any], seconds: float = 10.0) -> dict[str, Any]:
    """Build frontend and encoder from ``cfg`` and measure them on ``seconds`` of audio.

    Returns ``frontend``/``encoder`` modules, ``params`` rows, ``total_params``,
    ``input_frames``, ``output_frames``, ``input_rate``/``output_rate`` (frames/s),
    ``output_dim`` and ``forward_s`` (encoder forward time, one run).
    """
    if not cfg.get("encoder"):
        raise ConfigError("encoder: section missing (nothing to describe)")
    frontend = FRONTENDS.build(cfg.get("frontend") or DEFAULT_FRONTEND, key="frontend").eval()
    block, _ = split_init_keys(cfg["encoder"])  # architecture only: no weights are loaded
    encoder = ENCODERS.build(block, key="encoder", input_dim=frontend.output_dim).eval()
    sr = int(getattr(frontend, "sampling_rate", 16000))
    gen = torch.Generator().manual_seed(0)
    audio = 0.1 * torch.randn(1, int(seconds * sr), generator=gen)
    feats, feat_lens = frontend(audio, torch.tensor([audio.shape[1]]))
    t0 = time.perf_counter()
    hidden, lens = encoder(feats, feat_lens)
    forward_s = time.perf_counter() - t0
    if hidden.shape[-1] != encoder.output_dim:
        raise RuntimeError(
            f"encoder output has {hidden.shape[-1]} dims but output_dim says {encoder.output_dim}"
        )
    return {
        "frontend": frontend,
        "encoder": encoder,
        "params": param_table("frontend", frontend) + param_table("encoder", encoder),
        "total_params": count(frontend) + count(encoder),
        "input_frames": int(feat_lens[0]),
        "output_frames": int(lens[0]),
        "input_rate": int(feat_lens[0]) / seconds,
        "output_rate": int(lens[0]) / seconds,
        "output_dim": int(encoder.output_dim),
        "forward_s": forward_s,
        "seconds": seconds,
    }


def format_report(d: dict[str, Any], title: str = "") -> str:
    """Human-readable text of :func:`describe`'s result."""
    lines = [f"== {title}" if title else "==", "parameters:"]
    width = max(len(n) for n, _ in d["params"])
    lines += [f"  {n:<{width}}  {c:>13,}  ({c / 1e6:.2f} M)" for n, c in d["params"]]
    t = d["total_params"]
    lines += [
        f"  {'total':<{width}}  {t:>13,}  ({t / 1e6:.2f} M)",
        f"input:  {d['input_frames']} frames for {d['seconds']:g} s = {d['input_rate']:.1f} "
        f"frames/s, {d['frontend'].output_dim} dims",
        f"output: {d['output_frames']} frames for {d['seconds']:g} s = {d['output_rate']:.1f} "
        f"frames/s, {d['output_dim']} dims",
        f"encoder forward (CPU, batch 1, {d['seconds']:g} s clip, one run): {d['forward_s']:.2f} s",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "args", nargs="*", help="config YAML files and/or dotted overrides (key.sub=value)"
    )
    p.add_argument("--config", "-c", action="append", default=[], help="config YAML (repeatable)")
    p.add_argument("--seconds", type=float, default=10.0, help="dummy clip length (s)")
    args = p.parse_args(argv)
    overrides = [a for a in args.args if "=" in a]
    paths = args.config + [a for a in args.args if "=" not in a]
    if not paths and not overrides:
        p.error("give a config file (e.g. egs/TEMPLATE/conf/encoder/zipformer_m.yaml)")
    cfg = load_config(paths, overrides)
    import_plugins(cfg.get("plugins"))
    check_top_level(cfg)
    torch.manual_seed(0)
    print(format_report(describe(cfg, args.seconds), " ".join(paths + overrides)))
    return 0


def cli() -> None:
    run_cli(main)


if __name__ == "__main__":
    cli()
