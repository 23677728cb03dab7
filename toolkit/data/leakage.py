"""The one "same clip" rule: which ids make two cuts the same underlying audio.

Aggregation drops training cuts that match an evaluation clip (:class:`LeakageIndex` over the
evaluation manifests); evaluation refuses to score clips the encoder was pretrained on
(:func:`find_leaks`, the same index over the pretraining manifest). Both compare the ids of
:func:`clip_ids`, field by field:

* ``cut_id``: the cut's own id;
* ``audio_key``: the canonical id of the audio, shared across corpora (``yt:<ytid>:<start>``);
* ``ytid``: the YouTube video of a ``yt:`` key (any clip of the same video: conservative);
* ``orig_id``: the corpus's own id, qualified by its source (``<source>:<orig_id>``), so that
  two corpora's numbering never collides.

A blacklist entry (one id per line) matches any of these ids, and the unqualified ``orig_id``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from lhotse import CutSet
from lhotse.cut import Cut

from toolkit.data.cuts import cut_custom

log = logging.getLogger(__name__)

MATCH_FIELDS = ("cut_id", "audio_key", "ytid", "orig_id")


def ytid_of(audio_key: str | None) -> str | None:
    """The YouTube id of ``yt:<ytid>:<start>`` (None for other keys)."""
    if not audio_key or not audio_key.startswith("yt:"):
        return None
    rest = audio_key[3:]
    return rest.rsplit(":", 1)[0] if ":" in rest else rest or None


def clip_ids(cut: Cut) -> dict[str, str]:
    """``{field: value}`` of the ids that identify a cut's audio (absent ones left out)."""
    c = cut_custom(cut)
    out = {"cut_id": cut.id}
    if c.get("audio_key"):
        out["audio_key"] = str(c["audio_key"])
        if yt := ytid_of(out["audio_key"]):
            out["ytid"] = yt
    if c.get("orig_id"):
        source = c.get("source")
        out["orig_id"] = f"{source}:{c['orig_id']}" if source else str(c["orig_id"])
    return out


class LeakageIndex:
    """Reference clips that another set must not contain.

    Args:
        match_on: the fields of :data:`MATCH_FIELDS` compared (a cut matches a reference when
            one of these ids is equal). Blacklist entries are compared with every id.
    """

    def __init__(self, match_on: Iterable[str] = MATCH_FIELDS) -> None:
        self.match_on = tuple(match_on)
        bad = set(self.match_on) - set(MATCH_FIELDS)
        if bad:
            raise ValueError(f"unknown leakage match field(s) {sorted(bad)}; known: {MATCH_FIELDS}")
        self.ref_ids: dict[str, dict[str, str]] = {f: {} for f in self.match_on}
        self.blacklist: set[str] = set()

    def add_cuts(self, cuts: Iterable[Cut], origin: str) -> int:
        """Add the ids of every cut (streamed once) as references named ``origin``; returns the
        number of cuts."""
        n = 0
        for cut in cuts:
            for field, value in clip_ids(cut).items():
                if field in self.ref_ids:
                    self.ref_ids[field].setdefault(value, origin)
            n += 1
        log.info("leakage reference %s: %d cuts", origin, n)
        return n

    def add_manifest(self, path: Path | str, origin: str | None = None) -> int:
        """Add every cut of a manifest (origin: its file name without extensions)."""
        return self.add_cuts(CutSet.from_jsonl_lazy(path), origin or Path(path).name.split(".")[0])

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
        return sum(len(v) for v in self.ref_ids.values()) + len(self.blacklist)

    def match(self, cut: Cut) -> tuple[str, str] | None:
        """``(reason, id)`` if the cut is a reference clip, e.g. ``("eval:audiocaps_cuts_test:ytid",
        "abc123def45")`` or ``("blacklist:orig_id", "123")``; None if not."""
        ids = clip_ids(cut)
        for field in self.match_on:
            value = ids.get(field)
            if value is not None and value in self.ref_ids[field]:
                return f"eval:{self.ref_ids[field][value]}:{field}", value
        if self.blacklist:
            raw = cut_custom(cut).get("orig_id")
            for field, value in [*ids.items(), ("orig_id", str(raw) if raw else None)]:
                if value is not None and value in self.blacklist:
                    return f"blacklist:{field}", value
        return None


def find_leaks(
    pretrain: Iterable[Cut],
    evaluation: dict[str, Iterable[Cut]],
    match_on: Iterable[str] = MATCH_FIELDS,
) -> dict[str, list[str]]:
    """``{split: [ids of evaluation cuts that are pretraining clips]}`` (splits without leaks
    are left out). ``pretrain`` is streamed once; only its ids are kept."""
    index = LeakageIndex(match_on)
    index.add_cuts(pretrain, "pretraining")
    out = {}
    for split, cuts in evaluation.items():
        leaks = [c.id for c in cuts if index.match(c)]
        if leaks:
            out[split] = leaks
    return out
