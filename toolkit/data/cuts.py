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
  - metadata (optional, see :data:`METADATA_KEYS`): ``audio_key`` (a canonical id of the
    underlying audio shared across corpora, e.g. ``yt:<youtube id>:<start s>``, used to merge
    duplicates), ``caption_source`` (list parallel to ``caption``: the corpus of each caption
    after aggregation), ``fold`` (official cross-validation fold), ``split`` (official split);
  - probe labels: every other key is a probe task named ``<domain>_<attribute>`` (e.g.
    ``speech_language``, ``music_tempo``, ``sound_event``) with a plain, human-readable string
    value usable in a text prompt (``"german"``, ``"fast"``, ``"violin"``, ``"three"``), or a
    list of such strings for a multi-label task (``music_tags``, ``sound_events``).

A cut may also cover only a segment ``[start, start + duration)`` of a longer recording (long
tracks cut by the corpus's own segment times): build it with :func:`caption_cut` from a
``Recording``; the audio file is never loaded at prepare time. Recordings with several channels
become ``MultiCut``s over all channels (the dataset averages them to mono).

Use :func:`make_caption_cut` (whole file) or :func:`caption_cut` (recording segment) to build cuts, :func:`reject_empty_captions` before writing a
manifest, :func:`label_tasks` to list the probe tasks present, and :func:`cut_captions` /
:func:`cut_labels` to read them back.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from lhotse import CutSet, MonoCut, MultiCut, Recording, SupervisionSegment
from lhotse.cut import Cut

logger = logging.getLogger(__name__)

RESERVED_KEYS = {"caption", "caption_style", "domain", "source", "orig_id"}
METADATA_KEYS = {"audio_key", "caption_source", "fold", "split"}
CAPTION_STYLES = ("tags", "short", "detailed", "speaking_style")
DOMAINS = ("speech", "music", "sound", "mix")
_LABEL_KEY = re.compile(r"^[a-z][a-z0-9]*_[a-z0-9_]+$")
_WS = re.compile(r"\s+")
_CONTROL = re.compile(r"\x1b\[[0-9;]*[A-Za-z]|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # ANSI + C0
MAX_CAPTION_WORDS = 512  # longer captions are cut (tokenizers keep far fewer tokens anyway)


def clean_caption(caption: str) -> str:
    """Strip and collapse internal whitespace of one caption (``""`` for ``None``), remove
    control characters and terminal escape sequences, and cut it to
    :data:`MAX_CAPTION_WORDS` words."""
    words = _WS.sub(" ", _CONTROL.sub("", caption or "")).strip().split(" ")
    return " ".join(words[:MAX_CAPTION_WORDS])


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
    labels: dict[str, Any] | None = None,
    orig_id: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> Cut:
    """Build a contract-conforming cut for a whole audio file (recording id = ``cut_id``).

    Reads only the file header. See :func:`caption_cut` for the arguments and errors.
    """
    recording = Recording.from_file(audio_path, recording_id=cut_id)
    return caption_cut(
        recording, cut_id, captions, styles, domain, source, labels, orig_id, metadata=metadata
    )


def caption_cut(
    recording: Recording,
    cut_id: str,
    captions: Sequence[str],
    styles: Sequence[str],
    domain: str,
    source: str,
    labels: dict[str, Any] | None = None,
    orig_id: str | None = None,
    start: float = 0.0,
    duration: float | None = None,
    metadata: dict[str, Any] | None = None,
) -> Cut:
    """Build a contract-conforming cut over ``[start, start + duration)`` s of ``recording``.

    Captions are cleaned pairwise with their styles (a caption that is empty after cleaning is
    dropped together with its style). A cut may end up with no caption at all (evaluation
    corpora with labels only); caption corpora remove such cuts with :func:`reject_empty_captions`.
    ``labels`` values are strings or lists of strings (multi-label tasks). ``duration=None``
    runs to the end of the recording. A multi-channel recording gives a ``MultiCut``.

    Raises:
        ValueError: on mismatched caption/style lengths, unknown style or domain, a label key
            that is reserved or not of the form ``<domain>_<attribute>``, an unknown metadata
            key, or a segment outside the recording.
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
    for key, value in sorted((metadata or {}).items()):
        if key not in METADATA_KEYS:
            raise ValueError(
                f"{cut_id}: unknown metadata key {key!r} (known: {sorted(METADATA_KEYS)})"
            )
        if value is not None:
            custom[key] = value
    for key, value in sorted((labels or {}).items()):
        if not is_label_key(key):
            raise ValueError(f"{cut_id}: invalid label key {key!r}")
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            custom[key] = [str(v) for v in value]
        else:
            custom[key] = str(value)

    if duration is None:
        duration = recording.duration - start
    eps = 1e-3
    if start < 0 or duration <= 0 or start + duration > recording.duration + eps:
        raise ValueError(
            f"{cut_id}: segment [{start:.3f}, {start + duration:.3f}] s is outside recording "
            f"{recording.id} of {recording.duration:.3f} s"
        )
    duration = min(duration, recording.duration - start)
    channel: int | list[int] = 0
    if recording.num_channels > 1:
        channel = list(recording.channel_ids)
    supervision = SupervisionSegment(
        id=cut_id,
        recording_id=recording.id,
        start=0.0,
        duration=duration,
        channel=channel,
        text=custom["caption"][0] if custom["caption"] else "",
        custom=custom,
    )
    cls = MultiCut if isinstance(channel, list) else MonoCut
    return cls(
        id=cut_id,
        start=start,
        duration=duration,
        channel=channel,
        supervisions=[supervision],
        recording=recording,
    )


def is_label_key(key: str) -> bool:
    """True for a probe-task key ``<domain>_<attribute>`` (not reserved, not metadata)."""
    return (
        key not in RESERVED_KEYS
        and key not in METADATA_KEYS
        and bool(_LABEL_KEY.match(key))
        and key.split("_", 1)[0] in DOMAINS
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
        if is_label_key(k)
    }


def label_tasks(cuts: Iterable[Cut]) -> list[str]:
    """Sorted names of the probe tasks (non-reserved custom keys) present in ``cuts``."""
    tasks: set[str] = set()
    for cut in cuts:
        tasks.update(k for k in cut_custom(cut) if is_label_key(k))
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
