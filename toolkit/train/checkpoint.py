"""Checkpoints: atomic writes (temp file + fsync + rename), keep-last-K, newest-loadable resume."""

from __future__ import annotations

import errno
import logging
import os
import pickle
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

log = logging.getLogger(__name__)
_NAME = re.compile(r"^checkpoint-(\d+)\.pt$")
_TEMP = re.compile(r"^\.checkpoint-\d+\.pt\.tmp\d+$")  # save_atomic's temp files


class CheckpointError(RuntimeError):
    """A checkpoint could not be written or read."""


def rng_state() -> dict[str, Any]:
    """Python, NumPy, torch (CPU and CUDA) RNG states."""
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _os_error(e: BaseException | None) -> OSError | None:
    """The :class:`OSError` behind ``e``: ``e`` itself or one it was raised from or during
    (``torch.save`` turns a failed ``write`` into a ``RuntimeError`` of its zip writer)."""
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, OSError):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


def save_atomic(obj: Any, path: Path) -> None:
    """``torch.save`` to ``path`` so that a crash or a full disk never leaves a partial file
    under the final name: written to ``.<name>.tmp<pid>`` beside it, fsynced, renamed. On any
    failure the temp file is removed; a write error (disk full, quota, I/O) raises
    :class:`CheckpointError` naming the path. A process killed mid-write leaves only its temp
    file, which :func:`list_checkpoints` ignores and :func:`save_checkpoint` removes later."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:  # also KeyboardInterrupt: never leave the temp file behind
        tmp.unlink(missing_ok=True)
        err = _os_error(e)
        if err is None:
            raise
        full = " (disk full)" if err.errno in (errno.ENOSPC, errno.EDQUOT) else ""
        raise CheckpointError(
            f"cannot write checkpoint {path}: {err.strerror or err}{full}; "
            "earlier checkpoints are untouched"
        ) from e


def list_checkpoints(ckpt_dir: Path) -> list[tuple[int, Path]]:
    """``[(step, path)]`` sorted by step."""
    if not ckpt_dir.is_dir():
        return []
    out = []
    for p in ckpt_dir.iterdir():
        m = _NAME.match(p.name)
        if m:
            out.append((int(m.group(1)), p))
    return sorted(out)


def save_checkpoint(ckpt_dir: Path, step: int, state: dict[str, Any], keep_last: int) -> Path:
    """Write ``checkpoint-<step>.pt`` and delete all but the newest ``keep_last``, and the temp
    files of writes that were killed (a SIGKILL or power loss during :func:`save_atomic`)."""
    path = ckpt_dir / f"checkpoint-{step}.pt"
    save_atomic(state, path)
    for _, old in list_checkpoints(ckpt_dir)[:-keep_last] if keep_last > 0 else []:
        old.unlink(missing_ok=True)
    for stale in ckpt_dir.iterdir():
        if _TEMP.match(stale.name):
            log.info("removing %s (left by a checkpoint write that was killed)", stale)
            stale.unlink(missing_ok=True)
    return path


def load_latest(ckpt_dir: Path) -> dict[str, Any] | None:
    """The newest checkpoint that loads; unreadable ones (truncated, corrupt) are reported with
    a warning naming the file and passed over. None when there is none that loads."""
    for _, path in reversed(list_checkpoints(ckpt_dir)):
        try:
            return load_weights_only(path)
        except Exception as e:
            reason = str(e).removeprefix(f"cannot read {path}: ")
            log.warning("checkpoint %s is unreadable (%s); trying an older one", path, reason)
    return None


def _numpy_rng_globals() -> list[Any]:
    """The NumPy globals that :func:`rng_state`'s NumPy state pickles (its MT19937 key is a
    ``uint32`` array), under the names NumPy 2 (``numpy._core``) and NumPy 1 (``numpy.core``)
    write: nothing that can run code."""
    try:
        from numpy._core.multiarray import _reconstruct  # NumPy >= 2
    except ImportError:  # pragma: no cover - NumPy 1
        from numpy.core.multiarray import _reconstruct
    return [
        (_reconstruct, "numpy._core.multiarray._reconstruct"),
        (_reconstruct, "numpy.core.multiarray._reconstruct"),
        np.ndarray,
        np.dtype,
        type(np.dtype(np.uint32)),  # numpy.dtypes.UInt32DType
    ]


def _load_error(path: Path, e: Exception) -> CheckpointError:
    """One line naming the file and the reason (torch's messages run over several lines)."""
    text = str(e)
    m = re.search(r"(Unsupported global: GLOBAL \S+|Can only build [^\n]*)", text)
    if m:
        reason = f"{m.group(1)} (refused: loading it could run code from the file)"
    else:
        text = text.split("WeightsUnpickler error:")[-1]
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        reason = f"{lines[0] if lines else type(e).__name__} (not a checkpoint, or a damaged one)"
    return CheckpointError(f"cannot read {path}: {reason}")


def load_weights_only(path: Path) -> Any:
    """``torch.load`` (to CPU) that never runs code from the file, for files of unknown origin.

    ``weights_only=True`` first; a file that needs more globals (the toolkit's own checkpoints:
    their RNG states hold NumPy arrays) is loaded again with only the NumPy types of
    :func:`rng_state` allowed. Anything else (a pickled callable, a truncated or foreign file)
    raises :class:`CheckpointError` naming the path and the reason."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "Unsupported global" not in str(e) and "Can only build" not in str(e):
            raise _load_error(path, e) from e
    except Exception as e:
        raise _load_error(path, e) from e
    try:
        with torch.serialization.safe_globals(_numpy_rng_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise _load_error(path, e) from e


def model_weights(state: dict[str, Any], source: Any = None) -> dict[str, Any]:
    """The weights to evaluate in a checkpoint or ``model.pt``: its EMA (``"ema"``, written with
    ``train.ema_decay``) when present, else ``"model"``. Logs which (naming ``source``)."""
    use_ema = isinstance(state.get("ema"), dict)
    log.info(
        "%susing the %s weights",
        f"{source}: " if source else "",
        "EMA (train.ema_decay)" if use_ema else "model",
    )
    return state["ema"] if use_ema else state["model"]
