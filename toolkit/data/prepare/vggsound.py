"""VGGSound (10 s YouTube clips, 309 sound classes) → cut manifests (label-only evaluation).

Reads the official ``vggsound.csv`` (no header; rows ``ytid,start_seconds,label,split`` with
``split`` in ``train``/``test``; labels may contain commas and are quoted). VGGSound ships no
audio: each user downloads the clips, so the local file naming varies. The 10 s clip of row
``(ytid, start)`` is looked up under ``audio_dir`` (and under ``audio_dir/<train|test>``) with
these stems, in this order, and any extension :func:`find_audio` knows (``.flac``, ``.wav``,
``.mp3``, ``.ogg``, ``.m4a`` ...):

1. ``<ytid>_<start:06d>`` (``BT7h7bpL0wE_000030``: the official download scripts and most
   redistributions);
2. ``<ytid>_<start>`` (``BT7h7bpL0wE_30``);
3. ``<ytid>_<start ms>_<end ms>`` (``BT7h7bpL0wE_30000_40000``: AudioSet-style downloaders);
4. ``<ytid>`` (one file per video).

The file must be the 10 s clip itself (the whole file becomes the cut). Splits: ``test`` is the
official test split; ``dev`` is carved from the official train split, a ``dev_fraction`` share of
its YouTube videos chosen by a hash of the YouTube id (deterministic, independent of the csv
order); the rest is ``train``. Cut id ``vggsound_<ytid>_<start:06d>``, no caption, label
``sound_event`` (the class name as written in the csv, e.g. ``bird chirping, tweeting``),
metadata ``audio_key`` = ``yt:<ytid>:<start>`` and ``split``.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lhotse import CutSet
from lhotse.cut import Cut

from toolkit.data.prepare.common import (
    SPLITS,
    PrepareRun,
    SkipItem,
    Unpack,
    first_audio,
    hash01,
    prepare_splits,
    register_corpus,
    require_file,
    whole_file_cut,
)

log = logging.getLogger(__name__)

NAME = "vggsound"
CLIP_SECONDS = 10


def audio_stems(ytid: str, start: int) -> list[str]:
    """File stems tried for the clip ``(ytid, start)``, most specific first (see module doc)."""
    end = start + CLIP_SECONDS
    return [f"{ytid}_{start:06d}", f"{ytid}_{start}", f"{ytid}_{start * 1000}_{end * 1000}", ytid]


def find_clip(dirs: list[str], ytid: str, start: int) -> Path | None:
    """The first existing audio file of the clip over ``dirs`` × :func:`audio_stems`."""
    return first_audio((d, stem) for stem in audio_stems(ytid, start) for d in dirs)


def _clip_cut(item: dict[str, Any]) -> Cut:
    """One VGGSound row → cut with ``sound_event`` and ``audio_key`` (SkipItem on bad rows)."""
    ytid, start, label = item["ytid"], item["start"], " ".join(item["label"].split())
    if len(ytid) != 11 or start is None or start < 0 or not label:
        raise SkipItem("bad_metadata", f"row {item['row']}: {ytid!r}, {item['raw_start']!r}")
    orig_id = f"{ytid}_{start:06d}"
    return whole_file_cut(
        find_clip(item["dirs"], ytid, start), f"{NAME}_{orig_id}", "sound", NAME,
        {"sound_event": label}, orig_id=orig_id, audio_key=f"yt:{ytid}:{start}",
        split=item["split"],
    )  # fmt: skip


def _parse_start(text: str) -> int | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return int(value) if value == int(value) else None


def _rows(
    csv_path: Path, split: str, audio_dir: Path, dev_fraction: float
) -> Iterator[dict[str, Any]]:
    """Items of ``split`` (train/dev/test) from ``vggsound.csv``, streamed."""
    unknown = 0
    with open(csv_path, encoding="utf-8", newline="") as f:
        for n, row in enumerate(csv.reader(f), 1):
            if not row or not "".join(row).strip():
                continue
            if len(row) < 4:
                row = row + [""] * (4 - len(row))
            ytid, raw_start, label, official = (x.strip() for x in row[:4])
            start = _parse_start(raw_start)
            if n == 1 and start is None and len(ytid) != 11:
                continue  # a header line added by some redistributions
            if official == "train":
                row_split = "dev" if hash01(ytid) < dev_fraction else "train"
            elif official == "test":
                row_split = "test"
            else:
                unknown += 1
                continue
            if row_split == split:
                yield {
                    "ytid": ytid, "start": start, "raw_start": raw_start, "label": label,
                    "split": split, "row": n, "dirs": [str(audio_dir), str(audio_dir / official)],
                }  # fmt: skip
    if unknown and split == "train":
        log.warning("%s: %d row(s) with a split other than train/test ignored", csv_path, unknown)


@register_corpus(NAME)
def prepare_vggsound(
    corpus_dir: Path | str,
    output_dir: Path | str,
    csv_file: str = "vggsound.csv",
    audio_dir: str = "audio",
    dev_fraction: float = 0.05,
    min_duration: float = 1.0,
    **run: Unpack[PrepareRun],
) -> dict[str, CutSet]:
    """VGGSound → ``vggsound_cuts_{train,dev,test}`` (label ``sound_event``, ``audio_key``).

    Args:
        csv_file: the official csv (relative to ``corpus_dir`` unless absolute).
        audio_dir: folder of the downloaded 10 s clips (relative to ``corpus_dir`` unless
            absolute); files may also sit in its ``train/`` and ``test/`` sub-folders.
        dev_fraction: share of the official train videos (by YouTube id hash) held out as dev.
        min_duration: clips shorter than this (s; failed or partial downloads) are skipped as
            ``too_short``.
    """
    if not 0.0 <= dev_fraction < 1.0:
        raise ValueError(f"dev_fraction must be in [0, 1), got {dev_fraction}")
    root = Path(corpus_dir)
    csv_path = require_file(root / csv_file, "VGGSound csv", " (see docs/corpora/vggsound.md)")
    audio = root / audio_dir
    return prepare_splits(
        NAME,
        output_dir,
        SPLITS,
        lambda split: _rows(csv_path, split, audio, dev_fraction),
        _clip_cut,
        item_id=lambda x: f"{x['ytid']}_{x['raw_start']}",
        min_duration=min_duration,
        **run,
    )
