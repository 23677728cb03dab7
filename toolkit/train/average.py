"""Checkpoint averaging (icefall's ``--avg N``): the mean of the weights of several checkpoints.

Floating-point entries of the state dict are averaged elementwise (summed in float64, divided,
cast back to their dtype); integer/bool buffers (step counters, ``batch_count``) and other
entries are taken from the newest checkpoint. The checkpoints must hold the same keys with the
same shapes and dtypes. Files are read with ``torch.load(weights_only=True)`` (plus the NumPy
types of the toolkit's RNG states, :func:`~toolkit.train.checkpoint.load_weights_only`), so a
file of unknown origin cannot run code. The result is written like the train CLI's ``model.pt``:
``{"model", "config", "step", "averaged_from"}``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from toolkit.train.checkpoint import list_checkpoints, save_atomic
from toolkit.weights import CheckpointError, load_weights_only

log = logging.getLogger(__name__)
_STEP_IN_NAME = re.compile(r"checkpoint-(\d+)\.pt$")


class AverageError(CheckpointError):
    """The checkpoints cannot be averaged (too few, unreadable, or of different models)."""


@dataclass
class Averaged:
    """The result of :func:`average_checkpoints`."""

    weights: dict[str, Any]  # the averaged state dict
    step: int | None  # the newest checkpoint's step
    config: dict[str, Any] | None  # the newest checkpoint's config (None if it has none)
    files: list[Path]  # the inputs, oldest first
    newest: Path


def select_checkpoints(exp_dir: Path, n: int) -> list[Path]:
    """The newest ``n`` files ``exp_dir/checkpoints/checkpoint-<step>.pt``, oldest first."""
    if n < 1:
        raise AverageError(f"--avg {n}: average at least 1 checkpoint")
    ckpt_dir = Path(exp_dir) / "checkpoints"
    found = list_checkpoints(ckpt_dir)
    if len(found) < n:
        names = ", ".join(p.name for _, p in found) or "none"
        raise AverageError(
            f"--avg {n}: {ckpt_dir} holds {len(found)} checkpoint(s) ({names}); averaging {n} "
            f"needs {n} (train with train.keep_last >= {n}, or average fewer)"
        )
    return [p for _, p in found[-n:]]


def _step_of(path: Path, state: dict[str, Any]) -> int | None:
    trainer = state.get("trainer")
    if isinstance(trainer, dict) and isinstance(trainer.get("step"), int):
        return trainer["step"]
    if isinstance(state.get("step"), int):
        return state["step"]
    m = _STEP_IN_NAME.search(path.name)
    return int(m.group(1)) if m else None


def _is_averaged(v: Any) -> bool:
    return isinstance(v, Tensor) and (v.is_floating_point() or v.is_complex())


def _describe(v: Any) -> str:
    if isinstance(v, Tensor):
        return f"{tuple(v.shape)} {str(v.dtype).removeprefix('torch.')}"
    return type(v).__name__


def _first(keys: Sequence[str] | set[str], k: int = 5) -> str:
    keys = sorted(keys)
    return ", ".join(keys[:k]) + (f" (+{len(keys) - k} more)" if len(keys) > k else "")


def average_checkpoints(paths: Sequence[str | Path], key: str = "model") -> Averaged:
    """Average the ``key`` state dicts (``"model"``, or ``"ema"`` for the EMA weights) of
    ``paths``; one file is held in memory at a time besides the float64 sums.

    The newest file is the one with the highest step (the trainer's step, else ``step``, else
    the ``checkpoint-<step>.pt`` name); files whose step is unknown are ordered as given (later
    = newer). Raises :class:`AverageError` naming the files and keys when a file is unreadable or
    lacks ``key``, or the files disagree on keys, shapes or dtypes.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise AverageError("no checkpoints to average")
    seen: dict[Path, Path] = {}
    for p in paths:
        if p.resolve() in seen:
            raise AverageError(f"{p} is given twice (as {seen[p.resolve()]} too)")
        seen[p.resolve()] = p
    sums: dict[str, Tensor] = {}
    ref: dict[str, str] = {}  # key -> "shape dtype" of the first file
    dtypes: dict[str, torch.dtype] = {}  # of the averaged entries
    has_ema = False
    first = paths[0]
    others: list[dict[str, Any]] = []  # per file: non-averaged entries (small), step, config
    for i, path in enumerate(paths):
        if not path.is_file():
            raise AverageError(f"checkpoint {path} does not exist")
        state = load_weights_only(path)
        if not isinstance(state, dict) or not isinstance(state.get(key), dict):
            has = sorted(state) if isinstance(state, dict) else type(state).__name__
            hint = " (trained without train.ema_decay?)" if key == "ema" else ""
            raise AverageError(f"{path} holds no '{key}' state dict{hint}; it has {has}")
        weights = state[key]
        if i == 0:
            ref = {k: _describe(v) for k, v in weights.items()}
            for k, v in weights.items():
                if _is_averaged(v):
                    acc = torch.complex128 if v.is_complex() else torch.float64
                    sums[k], dtypes[k] = torch.zeros(v.shape, dtype=acc), v.dtype
        else:
            missing, extra = ref.keys() - weights.keys(), weights.keys() - ref.keys()
            if missing or extra:
                raise AverageError(
                    f"{path} and {first} are not checkpoints of the same model: keys only in "
                    f"{first.name}: [{_first(missing)}]; keys only in {path.name}: [{_first(extra)}]"
                )
            bad = [k for k, v in weights.items() if _describe(v) != ref[k]]
            if bad:
                shown = "; ".join(f"{k}: {_describe(weights[k])} vs {ref[k]}" for k in bad[:5])
                raise AverageError(
                    f"{path} and {first} disagree on the shape/dtype of {len(bad)} entries "
                    f"({path.name} vs {first.name}): {shown}"
                )
        for k, v in weights.items():
            if k in sums:
                sums[k] += v.to(sums[k].dtype)
        has_ema = has_ema or (key != "ema" and isinstance(state.get("ema"), dict))
        others.append(
            {
                "step": _step_of(path, state),
                "config": state.get("config") if isinstance(state.get("config"), dict) else None,
                "rest": {k: v for k, v in weights.items() if k not in sums},
            }
        )
        del state, weights
    if has_ema:
        log.info(
            "the checkpoints also hold EMA weights (train.ema_decay); --use-ema averages those"
        )
    steps = [o["step"] for o in others]
    order = list(range(len(paths)))
    if all(s is not None for s in steps):
        order.sort(key=lambda j: (steps[j], j))
    newest = order[-1]
    out: dict[str, Any] = {}
    for k in ref:  # the first file's key order (a state dict's order)
        if k in sums:
            out[k] = (sums[k] / len(paths)).to(dtypes[k])
        else:
            out[k] = others[newest]["rest"][k]
    return Averaged(
        weights=out,
        step=steps[newest],
        config=others[newest]["config"],
        files=[paths[j] for j in order],
        newest=paths[newest],
    )


def run_dir_of(path: Path) -> Path:
    """``<run>`` for ``<run>/checkpoints/checkpoint-N.pt``, else the file's folder."""
    parent = Path(path).parent
    return parent.parent if parent.name == "checkpoints" else parent


def average_to_file(
    paths: Sequence[str | Path],
    out: str | Path,
    run_dir: str | Path | None = None,
    use_ema: bool = False,
) -> Path:
    """Average ``paths`` (:func:`average_checkpoints`; ``use_ema``: their ``"ema"`` weights)
    and write ``{"model", "config", "step", "averaged_from"}`` atomically to ``out``. The
    config is the newest checkpoint's, else ``run_dir/config.yaml`` (``run_dir`` defaults to
    the newest file's run)."""
    out = Path(out)
    inputs = {Path(p).resolve() for p in paths}
    if out.resolve() in inputs:
        raise AverageError(f"-o {out}: the output would overwrite one of the checkpoints")
    avg = average_checkpoints(paths, "ema" if use_ema else "model")
    config = avg.config
    run = Path(run_dir) if run_dir is not None else run_dir_of(avg.newest)
    if config is None and (run / "config.yaml").is_file():
        from toolkit.config import load_config

        config = load_config(run / "config.yaml")
    if config is None:
        log.warning(
            "no config in %s nor %s: %s holds none (evaluate it inside a run dir with a "
            "config.yaml)",
            avg.newest,
            run / "config.yaml",
            out,
        )
    save_atomic(
        {
            "model": avg.weights,
            "config": config,
            "step": avg.step,
            "averaged_from": [p.name for p in avg.files],
        },
        out,
    )
    log.info(
        "averaged the %s weights of %d checkpoints (%s) into %s",
        "EMA" if use_ema else "model",
        len(avg.files),
        ", ".join(p.name for p in avg.files),
        out,
    )
    return out
