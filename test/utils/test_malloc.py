"""toolkit.utils.malloc: freed memory is reused instead of being faulted in again."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from toolkit.utils.malloc import user_chose_allocator

# bytes held in mmap'd blocks (glibc mallinfo2().hblkhd) while a 64 MB array is alive, in a
# fresh process: there, freeing returns them to the kernel and the next allocation faults them in
HELD_IN_MMAP = """
import ctypes, sys
import numpy as np
class Info(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Info
if sys.argv[1] == "keep":
    from toolkit.utils.malloc import keep_freed_memory
    assert keep_freed_memory() and keep_freed_memory()  # idempotent
a = np.ones(1 << 23)
print(libc.mallinfo2().hblkhd)
"""


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="glibc only",
)
def test_keep_freed_memory_serves_large_arrays_from_the_reused_heap():
    def held_in_mmap(mode: str) -> int:
        env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": ":".join(sys.path)}
        out = subprocess.run(
            [sys.executable, "-c", HELD_IN_MMAP, mode], env=env, capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        return int(out.stdout)

    assert held_in_mmap("system") >= 64 << 20
    assert held_in_mmap("keep") < 64 << 20


def test_the_users_allocator_choice_wins():
    assert user_chose_allocator({}) is None
    assert user_chose_allocator({"TOOLKIT_MALLOC": "system"}) == "TOOLKIT_MALLOC"
    assert user_chose_allocator({"MALLOC_ARENA_MAX_": "2"}) == "MALLOC_ARENA_MAX_"
    assert user_chose_allocator({"GLIBC_TUNABLES": "glibc.malloc.mmap_max=0"}) == "GLIBC_TUNABLES"
    assert user_chose_allocator({"LD_PRELOAD": "/usr/lib/libjemalloc.so.2"}) == "LD_PRELOAD"
    assert user_chose_allocator({"LD_PRELOAD": "/usr/lib/libfoo.so", "HOME": "/root"}) is None
