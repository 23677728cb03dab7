"""Identity of the underlying audio: leakage references, duplicate groups, audio fingerprints.

* :class:`LeakageIndex`: the ids of the evaluation clips (``audio_key``, YouTube id and
  ``orig_id`` of every cut in the evaluation manifests) and of a user blacklist; a training cut
  that matches any of them is dropped.
* :class:`DisjointSet`: union-find over cut ordinals (an ``array('q')``: 8 bytes per cut); the
  root of a group is always its smallest ordinal, i.e. the cut of the highest-priority source.
* :func:`audio_fingerprint`: an optional content key (hash of the quantised log-energy envelope
  of the first seconds at 16 kHz) that finds duplicates lacking a shared ``audio_key``.
"""

from __future__ import annotations

import hashlib
import logging
from array import array
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from lhotse import CutSet
from lhotse.cut import Cut

from toolkit.data.cuts import cut_custom

log = logging.getLogger(__name__)

MATCH_FIELDS = ("audio_key", "ytid", "orig_id")


def ytid_of(audio_key: str | None) -> str | None:
    """The YouTube id of ``yt:<ytid>:<start>`` (None for other keys)."""
    if not audio_key or not audio_key.startswith("yt:"):
        return None
    rest = audio_key[3:]
    return rest.rsplit(":", 1)[0] if ":" in rest else rest or None


def cut_ids_for_matching(cut: Cut) -> dict[str, str]:
    """``{field: value}`` of the ids of a cut used for leakage matching (absent ones left out)."""
    c = cut_custom(cut)
    out = {}
    if c.get("audio_key"):
        out["audio_key"] = str(c["audio_key"])
        if yt := ytid_of(out["audio_key"]):
            out["ytid"] = yt
    if c.get("orig_id"):
        out["orig_id"] = str(c["orig_id"])
    return out


class LeakageIndex:
    """Ids that must not appear in training data.

    Args:
        match_on: which ids of an evaluation cut are compared with the same id of a training cut:
            ``audio_key`` (exact clip), ``ytid`` (any clip of the same YouTube video),
            ``orig_id`` (the corpus's own id). Blacklist entries are compared with all of them
            and with the cut id.
    """

    def __init__(self, match_on: Iterable[str] = MATCH_FIELDS) -> None:
        self.match_on = tuple(match_on)
        bad = set(self.match_on) - set(MATCH_FIELDS)
        if bad:
            raise ValueError(f"unknown leakage match field(s) {sorted(bad)}; known: {MATCH_FIELDS}")
        self.eval_ids: dict[str, dict[str, str]] = {f: {} for f in MATCH_FIELDS}
        self.blacklist: set[str] = set()

    def add_manifest(self, path: Path | str, origin: str | None = None) -> int:
        """Add the ids of every cut of an evaluation manifest; returns the number of cuts."""
        origin = origin or Path(path).name.split(".")[0]
        n = 0
        for cut in CutSet.from_jsonl_lazy(path):
            for field, value in cut_ids_for_matching(cut).items():
                self.eval_ids[field].setdefault(value, origin)
            n += 1
        log.info("leakage reference %s: %d cuts", origin, n)
        return n

    def add_blacklist(self, path: Path | str) -> int:
        """Add a blacklist file: one id per line (YouTube id, audio_key, orig_id or cut id);
        empty lines and ``#`` comments are ignored. Returns the number of ids read."""
        n = 0
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.split("#", 1)[0].strip()
                if line:
                    self.blacklist.add(line)
                    n += 1
        return n

    def __len__(self) -> int:
        return sum(len(v) for v in self.eval_ids.values()) + len(self.blacklist)

    def match(self, cut: Cut) -> tuple[str, str] | None:
        """``(reason, id)`` if the cut leaks, e.g. ``("eval:audiocaps_cuts_test:ytid",
        "abc123def45")`` or ``("blacklist:orig_id", "123")``; None if clean."""
        ids = cut_ids_for_matching(cut)
        for field in self.match_on:
            value = ids.get(field)
            if value is not None and value in self.eval_ids[field]:
                return f"eval:{self.eval_ids[field][value]}:{field}", value
        if self.blacklist:
            for field, value in [*ids.items(), ("cut_id", cut.id)]:
                if value in self.blacklist:
                    return f"blacklist:{field}", value
        return None


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
