"""JamendoMaxCaps: ~362k Creative-Commons Jamendo tracks with machine captions of 30-s segments.

The Hugging Face release (``amaai-lab/JamendoMaxCaps``) holds

* ``final_caption30sec.jsonl`` — one line per captioned segment:
  ``{"id": <track id>, "caption": str, "start_time": s, "end_time": s}``;
* ``YYYY-MM-DD.jsonl`` metadata shards — Jamendo API track records (``id, name, duration,
  artist_id, artist_name, releasedate, ..., musicinfo: {vocalinstrumental, speed, tags: {genres,
  instruments, vartags}}``); a track may appear in several shards (the last one read wins);
* ``data/*.parquet`` — the audio as arrays with ``path = <id>.mp3``; extract them once into MP3
  files (the dataset card's script) under ``audio_dir``. Audio is never read from parquet here.

Every caption segment becomes one cut over ``[start_time, end_time)`` of ``<audio_dir>/<id>.mp3``
(clamped to the track's end). Caption rows without times (exports that caption whole tracks) are
spread over ``segment_duration`` windows of the track. Consecutive rows of the same track form one
item (the file is read once); a track's rows should therefore be contiguous, as in the release.

Labels from the metadata (when present): ``music_genre`` (first genre), ``music_instruments``
(list), ``music_mood`` (list: a ``mood``/``moods`` column, else Jamendo's ``vartags``),
``music_tempo`` (``slow``/``moderate``/``fast`` from a ``bpm``/``tempo`` number with
``slow_bpm``/``fast_bpm`` thresholds, else from Jamendo's ``speed``: verylow/low → slow, medium →
moderate, high/veryhigh → fast), ``music_key`` (a ``key`` column), ``music_vocals`` (Jamendo's
``vocalinstrumental``). All cuts go to ``train`` unless ``dev_fraction``/``test_fraction`` hold
out a deterministic share of artists (by ``artist_id``; the track id when unknown).

Tables may be JSON lines (the release), CSV exports, or parquet when pyarrow is installed.
"""

from __future__ import annotations

import functools
import itertools
import re
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
    hash_split,
    prepare_splits,
    read_recording,
    register_corpus,
    require_dir,
    require_file,
    segment_times,
)
from toolkit.data.prepare.paraspeechcaps import as_list, iter_records

NAME = "jamendomaxcaps"
SPEED_TO_TEMPO = {
    "verylow": "slow",
    "low": "slow",
    "medium": "moderate",
    "high": "fast",
    "veryhigh": "fast",
}


def tempo_band(bpm: float, slow_bpm: float = 90.0, fast_bpm: float = 120.0) -> str:
    """``slow`` below ``slow_bpm``, ``fast`` at or above ``fast_bpm``, else ``moderate``."""
    if bpm < slow_bpm:
        return "slow"
    return "fast" if bpm >= fast_bpm else "moderate"


def _track_id(value: Any) -> str:
    text = str(value if value is not None else "").strip()
    if re.fullmatch(r"\d+\.0+", text):
        text = text.split(".")[0]
    return text


def _readable(value: str) -> str:
    return " ".join(re.sub(r"[_]+", " ", str(value)).split()).lower()


def _float(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if out == out else None


def track_labels(record: dict[str, Any], slow_bpm: float, fast_bpm: float) -> dict[str, Any]:
    """Probe labels of one metadata record (a Jamendo API track or a flat CSV/JSONL export)."""
    info = record.get("musicinfo") or {}
    tags = info.get("tags") or {} if isinstance(info, dict) else {}
    genres = as_list(record.get("genres") or record.get("genre") or tags.get("genres"))
    instruments = as_list(record.get("instruments") or tags.get("instruments"))
    moods = as_list(record.get("moods") or record.get("mood") or tags.get("vartags"))
    labels: dict[str, Any] = {
        "music_genre": _readable(genres[0]) if genres else None,
        "music_instruments": [_readable(x) for x in instruments] or None,
        "music_mood": [_readable(x) for x in moods] or None,
    }
    bpm = _float(record.get("bpm") if record.get("bpm") not in (None, "") else record.get("tempo"))
    speed = str(record.get("speed") or info.get("speed") or "").strip().lower()
    if bpm is not None and bpm > 0:
        labels["music_tempo"] = tempo_band(bpm, slow_bpm, fast_bpm)
    elif speed:
        labels["music_tempo"] = SPEED_TO_TEMPO.get(speed.replace(" ", ""), _readable(speed))
    key = str(record.get("key") or "").strip()
    labels["music_key"] = " ".join(key.split()) or None
    vocals = str(record.get("vocalinstrumental") or info.get("vocalinstrumental") or "").strip()
    labels["music_vocals"] = vocals.lower() or None
    return {k: v for k, v in labels.items() if v}


def load_metadata(
    files: list[Path], slow_bpm: float, fast_bpm: float
) -> dict[str, tuple[str, dict[str, Any]]]:
    """``{track id: (artist id or "", labels)}`` over the metadata files (later files win)."""
    meta: dict[str, tuple[str, dict[str, Any]]] = {}
    for path in files:
        for record in iter_records(path):
            tid = _track_id(record.get("id") or record.get("track_id"))
            if tid:
                artist = _track_id(record.get("artist_id"))
                meta[tid] = (artist, track_labels(record, slow_bpm, fast_bpm))
    return meta


def _fmt(seconds: float) -> str:
    return f"{seconds:.3f}".rstrip("0").rstrip(".") or "0"


def _item_cuts(item: dict[str, Any], segment_duration: float, min_duration: float) -> list[Cut]:
    """All captioned segments of one track."""
    tid = item["track"]
    path = find_audio(item["audio_dir"], tid)
    rec = read_recording(path if path else Path(item["audio_dir"]) / f"{tid}.mp3", f"{NAME}_{tid}")
    timed: dict[tuple[float, float], list[str]] = {}
    untimed: list[str] = []
    for start, end, caption in item["rows"]:
        if start is None or end is None or end <= start:
            untimed.append(caption)
        elif caption not in timed.setdefault((start, end), []):
            timed[(start, end)].append(caption)
    if timed:
        segments = [
            (s, min(e, rec.duration) - s, caps + untimed)
            for (s, e), caps in sorted(timed.items())
            if s < rec.duration - 1e-3
        ]
    else:
        segments = [
            (s, d, untimed)
            for s, d in segment_times(rec.duration, segment_duration, min_duration=min_duration)
        ]
    if not segments:
        raise SkipItem("bad_metadata", f"no caption segment inside {path} ({rec.duration:.1f} s)")
    return [
        caption_cut(
            rec,
            f"{NAME}_{tid}_{_fmt(s)}",
            caps,
            ["detailed"] * len(caps),
            "music",
            NAME,
            item["labels"],
            orig_id=tid,
            start=s,
            duration=d,
            metadata={"split": item["split"]},
        )
        for s, d, caps in segments
    ]


def _checked(item: dict[str, Any], segment_duration: float, min_duration: float) -> list[Cut]:
    if not item["rows"]:
        raise SkipItem("no_caption", item["track"])
    return _item_cuts(item, segment_duration, min_duration)


def _items(
    captions: Path,
    meta: dict[str, tuple[str, dict[str, Any]]],
    audio_dir: Path,
    split: str,
    dev_fraction: float,
    test_fraction: float,
) -> Iterator[dict[str, Any]]:
    rows = iter_records(captions)
    for tid, group in itertools.groupby(rows, key=lambda r: _track_id(r.get("id"))):
        if not tid:
            continue
        artist, labels = meta.get(tid, ("", {}))
        if hash_split(f"{NAME}:{artist or tid}", dev_fraction, test_fraction) != split:
            continue
        seg_rows = []
        for r in group:
            caption = " ".join(str(r.get("caption") or "").split())
            if caption:
                seg_rows.append((_float(r.get("start_time")), _float(r.get("end_time")), caption))
        yield {
            "track": tid,
            "rows": seg_rows,
            "labels": labels,
            "audio_dir": str(audio_dir),
            "split": split,
        }


@register_corpus(NAME)
def prepare_jamendomaxcaps(
    corpus_dir: Path | str,
    output_dir: Path | str,
    captions_file: str = "final_caption30sec.jsonl",
    metadata_glob: str = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9].jsonl",
    audio_dir: str = "mp3_files",
    segment_duration: float = 30.0,
    slow_bpm: float = 90.0,
    fast_bpm: float = 120.0,
    dev_fraction: float = 0.0,
    test_fraction: float = 0.0,
    min_duration: float = 1.0,
    **run: Unpack[PrepareRun],
) -> dict[str, CutSet]:
    """JamendoMaxCaps (segment captions + Jamendo metadata + MP3s) → ``jamendomaxcaps_cuts_train``.

    Args:
        captions_file: the segment captions (``.jsonl`` as released, or a ``.csv``/``.parquet``
            export with columns ``id, caption, start_time, end_time``), relative to
            ``corpus_dir`` unless absolute.
        metadata_glob: metadata tables under ``corpus_dir`` (the dated Jamendo shards by
            default; a flat CSV/JSONL export with ``id, genre(s), speed, bpm, key, mood(s),
            instruments, artist_id`` columns works too). No match → no labels.
        audio_dir: folder of ``<id>.mp3`` files extracted from ``data/*.parquet``.
        segment_duration: window length (s) for caption rows without times.
        slow_bpm, fast_bpm: ``music_tempo`` thresholds for a numeric BPM.
        dev_fraction, test_fraction: shares of artists held out into ``dev``/``test``.
        min_duration: segments shorter than this (s) are skipped as ``too_short``.
    """
    root = Path(corpus_dir)
    captions = require_file(root / captions_file, "JamendoMaxCaps captions")
    audio, hint = root / audio_dir, ""
    if not audio.is_dir() and list((root / "data").glob("*.parquet"))[:1]:
        hint = "; extract the MP3s from data/*.parquet first (docs/corpora/jamendomaxcaps.md)"
    require_dir(audio, "JamendoMaxCaps audio folder", hint)
    if not 0 <= dev_fraction + test_fraction < 1:
        raise ValueError("dev_fraction + test_fraction must be in [0, 1)")
    files = sorted(p for p in root.glob(metadata_glob) if p.resolve() != captions.resolve())
    meta = load_metadata(files, slow_bpm, fast_bpm)
    fn = functools.partial(_checked, segment_duration=segment_duration, min_duration=min_duration)
    splits = (
        ["train"] + (["dev"] if dev_fraction > 0 else []) + (["test"] if test_fraction > 0 else [])
    )
    return prepare_splits(
        NAME,
        output_dir,
        splits,
        lambda split: _items(captions, meta, audio, split, dev_fraction, test_fraction),
        fn,
        item_id=lambda x: x["track"],
        min_duration=min_duration,
        **run,
    )
