"""MusicCaps: 5,521 ten-second AudioSet music clips captioned by musicians.

The release is one file, ``musiccaps-public.csv``, with columns ``ytid, start_s, end_s,
audioset_positive_labels, aspect_list, caption, author_id, is_balanced_subset,
is_audioset_eval``; the audio has to be fetched from YouTube by the user. Each row becomes one cut
with two captions: the free-text ``caption`` (style ``detailed``) and the aspect list joined with
commas (style ``tags``); the aspects are also the multi-label task ``music_aspects``.

Audio under ``audio_dir`` is looked up for every row in these naming forms (any audio extension
:data:`~toolkit.data.prepare.common.AUDIO_EXTENSIONS`), first match wins:

* ``[<ytid>]-[<start_s>-<end_s>]`` — a 10-s clip (yt-dlp ``--download-sections`` naming);
* ``<ytid>_<start_s>`` and ``<ytid>_<start_s>_<end_s>`` — a 10-s clip;
* ``<ytid>`` — either the full YouTube audio (cut to ``[start_s, end_s)``) or, when the file is no
  longer than the segment plus ``clip_tolerance`` seconds, an already cut clip (taken whole; this
  is what the common ``download_musiccaps`` notebook writes).

Split: ``is_audioset_eval`` True → ``test``, else ``train`` (MusicCaps has no dev split).
"""

from __future__ import annotations

import ast
import csv
import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lhotse import CutSet
from lhotse.cut import Cut

from toolkit.data.cuts import caption_cut
from toolkit.data.prepare.common import (
    PrepareRun,
    SkipItem,
    Unpack,
    find_audio,
    first_audio,
    prepare_splits,
    read_recording,
    register_corpus,
    require_dir,
    require_file,
)

NAME = "musiccaps"
COLUMNS = ("ytid", "start_s", "end_s", "aspect_list", "caption", "is_audioset_eval")
CLIP_NAME_TEMPLATES = ("[{ytid}]-[{start}-{end}]", "{ytid}_{start}", "{ytid}_{start}_{end}")
FULL_NAME_TEMPLATE = "{ytid}"


def parse_aspect_list(text: str) -> list[str]:
    """``"['pop', 'mellow piano']"`` → ``["pop", "mellow piano"]`` (lower-cased, stripped).

    Falls back to splitting on commas when the cell is not a Python literal list.
    """
    text = (text or "").strip()
    if not text:
        return []
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        value = text.strip("[]").split(",")
    if isinstance(value, str):
        value = [value]
    out: list[str] = []
    for v in value:
        tag = " ".join(str(v).strip().strip("'\"").split()).lower()
        if tag and tag not in out:
            out.append(tag)
    return out


def _seconds(text: str) -> int:
    value = float(text)
    if value != int(value):
        raise ValueError(f"non-integer seconds {text!r}")
    return int(value)


def _truthy(text: str) -> bool:
    return str(text).strip().lower() in ("true", "1", "yes")


def _item_cut(item: dict[str, Any], clip_tolerance: float) -> Cut:
    """One MusicCaps row → one cut (a whole clip file or a segment of the full audio)."""
    ytid, start, end = item["ytid"], item["start"], item["end"]
    audio_dir = Path(item["audio_dir"])
    fmt = {"ytid": ytid, "start": start, "end": end}
    path = first_audio((audio_dir, template.format(**fmt)) for template in CLIP_NAME_TEMPLATES)
    is_clip = True
    if path is None:
        path, is_clip = find_audio(audio_dir, FULL_NAME_TEMPLATE.format(**fmt)), False
    if path is None:
        raise SkipItem("missing", f"{audio_dir}/{ytid}[...] (no clip or full audio)")
    rec = read_recording(path, item["id"])
    window = float(end - start)
    if not is_clip and rec.duration <= window + clip_tolerance:
        is_clip = True  # an already cut 10-s clip named <ytid>.<ext>
    if is_clip:
        seg_start, seg_dur = 0.0, rec.duration
    else:
        if end > rec.duration + clip_tolerance:
            raise SkipItem(
                "bad_metadata", f"segment [{start}, {end}] s beyond {path} ({rec.duration:.2f} s)"
            )
        seg_start, seg_dur = float(start), min(window, rec.duration - start)
    return caption_cut(
        rec,
        item["id"],
        item["captions"],
        item["styles"],
        "music",
        NAME,
        item["labels"],
        orig_id=ytid,
        start=seg_start,
        duration=seg_dur,
        metadata={"audio_key": f"yt:{ytid}:{start}", "split": item["split"]},
    )


def _checked_cut(item: dict[str, Any], clip_tolerance: float) -> Cut:
    if item.get("error"):
        raise SkipItem("bad_metadata", item["error"])
    if not item["captions"]:
        raise SkipItem("no_caption", item["ytid"])
    return _item_cut(item, clip_tolerance)


def _rows(csv_path: Path, audio_dir: Path, split: str) -> Iterator[dict[str, Any]]:
    """The items of one split, streamed from the CSV."""
    with open(csv_path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{csv_path}: missing column(s) {', '.join(missing)}")
        for n, row in enumerate(reader, 2):
            row_split = "test" if _truthy(row["is_audioset_eval"]) else "train"
            if row_split != split:
                continue
            ytid = (row["ytid"] or "").strip()
            item: dict[str, Any] = {"ytid": ytid, "audio_dir": str(audio_dir), "split": split}
            try:
                start, end = _seconds(row["start_s"]), _seconds(row["end_s"])
                if len(ytid) != 11 or end <= start:
                    raise ValueError(f"ytid {ytid!r}, start_s {start}, end_s {end}")
            except ValueError as e:
                yield {**item, "id": f"{NAME}_row{n}", "error": f"line {n}: {e}"}
                continue
            aspects = parse_aspect_list(row["aspect_list"])
            caption = (row["caption"] or "").strip()
            captions = [c for c in (caption, ", ".join(aspects)) if c]
            styles = (["detailed"] if caption else []) + (["tags"] if aspects else [])
            yield {
                **item,
                "id": f"{NAME}_{ytid}_{start}",
                "start": start,
                "end": end,
                "captions": captions,
                "styles": styles,
                "labels": {"music_aspects": aspects or None},
            }


@register_corpus(NAME)
def prepare_musiccaps(
    corpus_dir: Path | str,
    output_dir: Path | str,
    csv_file: str = "musiccaps-public.csv",
    audio_dir: str = "audio",
    clip_tolerance: float = 0.5,
    min_duration: float = 1.0,
    **run: Unpack[PrepareRun],
) -> dict[str, CutSet]:
    """MusicCaps (musiccaps-public.csv + YouTube audio) → ``musiccaps_cuts_{train,test}``.

    Args:
        csv_file: the release CSV (relative to ``corpus_dir`` unless absolute).
        audio_dir: folder of the downloaded audio (relative to ``corpus_dir`` unless absolute);
            clips or full YouTube audio, see the module docstring for the file names.
        clip_tolerance: seconds of slack: a ``<ytid>`` file at most ``end_s - start_s`` plus this
            long is taken as an already cut clip; full audio may end this much before ``end_s``.
        min_duration: cuts shorter than this (s) are skipped as ``too_short``.
    """
    root = Path(corpus_dir)
    csv_path = require_file(root / csv_file, "MusicCaps metadata")
    audio = require_dir(root / audio_dir, "MusicCaps audio folder", " (see --audio-dir)")
    fn = functools.partial(_checked_cut, clip_tolerance=clip_tolerance)
    return prepare_splits(
        NAME,
        output_dir,
        ("train", "test"),
        lambda split: _rows(csv_path, audio, split),
        fn,
        item_id=lambda x: x["id"],
        min_duration=min_duration,
        **run,
    )
