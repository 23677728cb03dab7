"""Signals the corpus fixtures write as their audio (not a fixture itself: no ``write_fixture``)."""

from __future__ import annotations

import numpy as np


def tone(seconds: float, sr: int, channels: int = 1, freq: float = 440.0) -> np.ndarray:
    """A quiet sine ``(S, C)`` float32 of ``seconds`` at ``sr`` Hz, the same on every channel."""
    t = np.arange(int(round(seconds * sr))) / sr
    x = 0.2 * np.sin(2 * np.pi * freq * t).astype(np.float32)
    return np.repeat(x[:, None], channels, axis=1)
