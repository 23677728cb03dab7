"""Fixtures of the evaluation tests (test/evaluate and test/evaluate/heads)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny heads and models train much faster on one intra-op thread on a shared CPU; the
    thread count is restored after each module."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
