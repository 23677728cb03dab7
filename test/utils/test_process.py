"""toolkit.utils.process: start times and the follow-the-trainer watchdog."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from toolkit.utils.process import FollowProcess, process_start_time

linux = pytest.mark.skipif(not os.path.isdir("/proc"), reason="needs Linux /proc")


@linux
def test_start_time_of_live_gone_and_zombie_processes():
    assert process_start_time(os.getpid()) not in (None, "")
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 30
    while process_start_time(child.pid) is not None and time.monotonic() < deadline:
        time.sleep(0.05)  # exited but not reaped: a zombie counts as gone
    assert process_start_time(child.pid) is None
    child.wait()
    assert process_start_time(child.pid) is None


@linux
def test_follower_ends_when_its_process_is_gone():
    """A process running ``FollowProcess(pid)`` ends once ``pid`` has exited, and not before."""
    leader = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(2)"])
    code = (
        "import sys, time\n"
        "from toolkit.utils.process import FollowProcess\n"
        f"FollowProcess({leader.pid}, interval_s=0.1)(0)\n"
        "time.sleep(60)\n"
    )
    follower = subprocess.Popen([sys.executable, "-c", code])
    time.sleep(1.0)
    assert follower.poll() is None  # the leader still runs
    leader.wait()
    assert follower.wait(timeout=30) == 0
    assert FollowProcess(os.getpid()).started == process_start_time(os.getpid())
