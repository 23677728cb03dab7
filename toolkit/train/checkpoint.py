"""Checkpoints: atomic writes (temp file + fsync + rename), keep-last-K, newest-loadable resume."""

from __future__ import annotations

import errno
import logging
import os
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from toolkit.weights import CheckpointError, load_weights_only, model_weights

__all__ = ["CheckpointError", "load_weights_only", "model_weights"]  # re-exported here
log = logging.getLogger(__name__)
_NAME = re.compile(r"^checkpoint-(\d+)\.pt$")
_TEMP = re.compile(r"^\.checkpoint-\d+\.pt\.tmp\d+$")  # save_atomic's temp files


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
