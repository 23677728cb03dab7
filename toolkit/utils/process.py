"""Processes that end with another one: a worker that is not its trainer's child.

Torch ends a dataloader worker whose parent process died. A ``forkserver`` worker's parent is
the server, which the worker itself keeps alive (it holds the server's "alive" pipe), so when
the trainer is killed (or exits without closing its loader) both would run on forever.
:class:`FollowProcess` is a picklable ``worker_init_fn`` that ends the worker instead.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path


def process_start_time(pid: int) -> str | None:
    """Start time of process ``pid`` (``/proc/<pid>/stat`` field 22, so a reused pid differs);
    None when the process is gone or a zombie (killed, not yet reaped by its parent); ``""`` for
    a live process where there is no ``/proc``."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return None if fields[0] in ("Z", "X") else fields[19]
    except OSError:
        if os.path.isdir("/proc"):
            return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return ""


class FollowProcess:
    """``worker_init_fn(worker_id)``: a daemon thread in the worker checks once a second that
    process ``pid`` (the one that built this object: the trainer) still runs, and ends the
    worker (``os._exit(0)``) when it does not."""

    def __init__(self, pid: int, interval_s: float = 1.0) -> None:
        self.pid = pid
        self.interval_s = interval_s
        self.started = process_start_time(pid)

    def __call__(self, worker_id: int) -> None:
        threading.Thread(target=self.watch, name="follow-process", daemon=True).start()

    def watch(self) -> None:
        while process_start_time(self.pid) == self.started:
            time.sleep(self.interval_s)
        os._exit(0)
