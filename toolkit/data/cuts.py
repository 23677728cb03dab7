"""Shared, corpus-independent helpers for caption cuts (the project's data contract).

Every corpus recipe produces Lhotse ``MonoCut`` manifests with this layout:

* one cut per clip; ``cut.id`` equals the recording id and the cut spans the whole recording;
* exactly ONE ``SupervisionSegment`` covering the whole cut, whose ``text`` is the first caption
  and whose ``custom`` dict holds:

  - ``caption``: ``list[str]`` of one or more cleaned captions of the same clip (stripped,
    whitespace collapsed, never empty);
  - ``caption_style``: ``list[str]`` parallel to ``caption``, each one of :data:`CAPTION_STYLES`
    (``tags``, ``short``, ``detailed``, ``speaking_style``);
  - ``domain``: one of :data:`DOMAINS` (``speech``, ``music``, ``sound``, ``mix``);
  - ``source``: the corpus name (e.g. ``"demo"``);
  - ``orig_id`` (optional): the clip id in the original corpus;
  - probe labels: every other key is a probe task named ``<domain>_<attribute>`` (e.g.
    ``speech_language``, ``music_tempo``, ``sound_event``) with a plain, human-readable string
    value usable in a text prompt (``"german"``, ``"fast"``, ``"violin"``, ``"three"``).

Use :func:`make_caption_cut` to build cuts, :func:`reject_empty_captions` before writing a
manifest, :func:`label_tasks` to list the probe tasks present, and :func:`cut_captions` /
:func:`cut_labels` to read them back.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from lhotse import CutSet, MonoCut, Recording, SupervisionSegment
from lhotse.cut import Cut

logger = logging.getLogger(__name__)

RESERVED_KEYS = {"caption", "caption_style", "domain", "source", "orig_id"}
CAPTION_STYLES = ("tags", "short", "detailed", "speaking_style")
DOMAINS = ("speech", "music", "sound", "mix")
_LABEL_KEY = re.compile(r"^[a-z][a-z0-9]*_[a-z0-9_]+$")
_WS = re.compile(r"\s+")


def clean_caption(caption: str) -> str:
    """Strip and collapse internal whitespace of one caption (``""`` for ``None``)."""
    return _WS.sub(" ", caption or "").strip()


def clean_captions(captions: Iterable[str]) -> list[str]:
    """Strip, collapse whitespace and drop empty captions (order preserved)."""
    cleaned = (clean_caption(c) for c in captions)
    return [c for c in cleaned if c]


def make_caption_cut(
    audio_path: Path | str,
    cut_id: str,
    captions: Sequence[str],
    styles: Sequence[str],
    domain: str,
    source: str,
    labels: dict[str, str] | None = None,
    orig_id: str | None = None,
) -> MonoCut:
    """Build a contract-conforming ``MonoCut`` for a whole audio file.

    Captions are cleaned pairwise with their styles (a caption that is empty after cleaning is
    dropped together with its style). A cut may end up with no caption at all; such cuts are
    removed later by :func:`reject_empty_captions`.

    Raises:
        ValueError: on mismatched caption/style lengths, unknown style or domain, or a label key
            that is reserved or not of the form ``<domain>_<attribute>``.
    """
    if len(captions) != len(styles):
        raise ValueError(f"{cut_id}: {len(captions)} captions but {len(styles)} styles")
    if domain not in DOMAINS:
        raise ValueError(f"{cut_id}: unknown domain {domain!r} (expected one of {DOMAINS})")
    pairs = [(clean_caption(c), s) for c, s in zip(captions, styles, strict=True)]
    pairs = [(c, s) for c, s in pairs if c]
    for _, style in pairs:
        if style not in CAPTION_STYLES:
            raise ValueError(f"{cut_id}: unknown caption style {style!r}")
    custom: dict[str, Any] = {
        "caption": [c for c, _ in pairs],
        "caption_style": [s for _, s in pairs],
        "domain": domain,
        "source": source,
    }
    if orig_id is not None:
        custom["orig_id"] = str(orig_id)
    for key, value in sorted((labels or {}).items()):
        if key in RESERVED_KEYS or not _LABEL_KEY.match(key):
            raise ValueError(f"{cut_id}: invalid label key {key!r}")
        custom[key] = str(value)

    recording = Recording.from_file(audio_path, recording_id=cut_id)
    supervision = SupervisionSegment(
        id=cut_id,
        recording_id=cut_id,
        start=0.0,
        duration=recording.duration,
        channel=0,
        text=custom["caption"][0] if custom["caption"] else "",
        custom=custom,
    )
    return MonoCut(
        id=cut_id,
        start=0.0,
        duration=recording.duration,
        channel=0,
        supervisions=[supervision],
        recording=recording,
    )


def cut_custom(cut: Cut) -> dict[str, Any]:
    """The ``custom`` dict of the cut's (first) supervision, or ``{}``."""
    if not cut.supervisions:
        return {}
    return cut.supervisions[0].custom or {}


def cut_captions(cut: Cut) -> list[str]:
    """The cleaned captions of a cut (the ``caption`` list; falls back to ``text``)."""
    if not cut.supervisions:
        return []
    caps = cut_custom(cut).get("caption")
    if caps is None:
        caps = [cut.supervisions[0].text or ""]
    elif isinstance(caps, str):
        caps = [caps]
    return clean_captions(caps)


def cut_labels(cut: Cut) -> dict[str, str | list[str]]:
    """The probe labels of a cut: every non-reserved custom key of its supervision (a string, or a
    list of strings for a multi-label task)."""
    return {
        k: [str(x) for x in v] if isinstance(v, (list, tuple)) else str(v)
        for k, v in cut_custom(cut).items()
        if k not in RESERVED_KEYS
    }


def label_tasks(cuts: Iterable[Cut]) -> list[str]:
    """Sorted names of the probe tasks (non-reserved custom keys) present in ``cuts``."""
    tasks: set[str] = set()
    for cut in cuts:
        tasks.update(k for k in cut_custom(cut) if k not in RESERVED_KEYS)
    return sorted(tasks)


def reject_empty_captions(cuts: CutSet | Iterable[Cut]) -> tuple[CutSet, int]:
    """Drop cuts that have no non-empty caption; return ``(kept_cuts, num_dropped)``.

    Logs a warning with the number of dropped cuts and the first few of their ids.
    """
    kept: list[Cut] = []
    dropped: list[str] = []
    for cut in cuts:
        if cut_captions(cut):
            kept.append(cut)
        else:
            dropped.append(cut.id)
    if dropped:
        preview = ", ".join(dropped[:5]) + (", ..." if len(dropped) > 5 else "")
        logger.warning("Dropped %d cut(s) with no caption: %s", len(dropped), preview)
    return CutSet.from_cuts(kept), len(dropped)
