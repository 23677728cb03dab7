"""Identity of the underlying audio: leakage references, duplicate groups, audio fingerprints.

* :class:`~toolkit.data.leakage.LeakageIndex` (the one "same clip" rule, shared with
  evaluation): the evaluation clips and a user blacklist; a training cut matching one is dropped.
* :class:`DisjointSet`: union-find over cut ordinals (an ``array('q')``: 8 bytes per cut); the
  root of a group is always its smallest ordinal, i.e. the cut of the highest-priority source.
* :func:`audio_fingerprint`: an optional content key (hash of the quantised log-energy envelope
  of the first seconds at 16 kHz) that finds duplicates lacking a shared ``audio_key``.
"""

from __future__ import annotations

import hashlib
import logging
from array import array

import numpy as np
from lhotse.cut import Cut

log = logging.getLogger(__name__)


class DisjointSet:
    """Union-find over ordinals ``0..n-1`` added one at a time; roots are group minima."""

    def __init__(self) -> None:
        self.parent = array("q")
        self.num_unions = 0

    def __len__(self) -> int:
        return len(self.parent)

    def add(self) -> int:
        """A new singleton; returns its ordinal."""
        self.parent.append(len(self.parent))
        return len(self.parent) - 1

    def find(self, x: int) -> int:
        parent = self.parent
        while parent[x] != x:
            parent[x] = parent[parent[x]]  # path halving
            x = parent[x]
        return x

    def union(self, a: int, b: int) -> int:
        """Merge the groups of ``a`` and ``b``; returns the new root (the smaller one)."""
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return ra
        lo, hi = min(ra, rb), max(ra, rb)
        self.parent[hi] = lo
        self.num_unions += 1
        return lo


def audio_fingerprint(
    cut: Cut,
    seconds: float = 10.0,
    sampling_rate: int = 16000,
    frame_s: float = 0.05,
    step_db: float = 6.0,
    min_levels: int = 3,
) -> str | None:
    """Content key of a cut: hash of its quantised log-energy envelope.

    The first ``seconds`` s are loaded at ``sampling_rate`` Hz (mono), cut into frames of
    ``frame_s`` s; each frame's energy in dB relative to the loudest frame is quantised to
    ``step_db`` steps (floored at -60 dB). Identical audio (also after a lossless re-encoding
    or a gain change, barring frames that sit on a quantisation boundary) gives the same key; a
    different clip almost surely does not. Lossy re-encodings are not guaranteed to match. Clips that are (near) silent or whose envelope has fewer than ``min_levels``
    distinct levels (steady tones, noise) give None: they would collide with each other.

    Returns:
        ``"fp:<16 hex digits>"`` or None (also when the audio cannot be loaded; logged).
    """
    from toolkit.data.dataset import load_mono

    try:
        if cut.duration > seconds:
            cut = cut.truncate(duration=seconds)
        audio = load_mono(cut, sampling_rate)
    except Exception as e:  # unreadable audio: no fingerprint, never a crash
        log.warning("fingerprint of %s failed: %s", cut.id, f"{type(e).__name__}: {e}")
        return None
    frame = max(1, int(round(frame_s * sampling_rate)))
    n = len(audio) // frame
    if n < 2:
        return None
    energy = (audio[: n * frame].astype(np.float64).reshape(n, frame) ** 2).mean(axis=1)
    if energy.max() < 1e-10:
        return None
    db = 10.0 * np.log10(np.maximum(energy, 1e-20) / energy.max())
    levels = np.clip(np.floor(-db / step_db), 0, int(60 // step_db)).astype(np.uint8)
    if len(np.unique(levels)) < min_levels:
        return None
    digest = hashlib.blake2b(levels.tobytes() + n.to_bytes(4, "little"), digest_size=8)
    return "fp:" + digest.hexdigest()
