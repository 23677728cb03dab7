"""WavCaps: ChatGPT-rewritten captions of AudioSet_SL, BBC Sound Effects, FreeSound, SoundBible.

Metadata, as released on Hugging Face (``cvssp/WavCaps``), one JSON per source::

    json_files/AudioSet_SL/as_final.json          ids "Y<youtube id>.wav"
    json_files/BBC_Sound_Effects/bbc_final.json   ids "07066104"
    json_files/FreeSound/fsd_final.json           ids "180913"
    json_files/SoundBible/sb_final.json           ids "2219"

each ``{"num_captions_per_audio": 1, "data": [{"id", "caption", "audio", "duration", ...}]}``
(a bare top-level list of records is also accepted, as in the GitHub copy of ``sb_final.json``).
The records are streamed one by one (the file text is held, not a parsed copy of it).

Audio: one flac per record, ``<id>.flac`` (``.wav`` of AudioSet_SL ids replaced), in a folder per
source, found as the first existing of ``<corpus_dir>/<folder>`` for folder in
``audio/<Source>``, ``Audio/<Source>``, ``<Source>_flac``, ``waveforms/<Source>_flac``,
``<Source>`` and the path the Zip_files unpack to
(``mnt/fast/nobackup/scratch4weeks/xm00178/WavCaps/data/waveforms/<Source>_flac``), or given per
subset with ``audio_dirs``. Every clip is one ``train`` cut with its single caption (style
``short``), domain ``sound``, source ``wavcaps``; AudioSet_SL clips get ``audio_key`` when their
start is known from ``audioset_segments``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lhotse import CutSet
from lhotse.cut import Cut

from toolkit.data.cuts import clean_captions
from toolkit.data.prepare.audiosetcaps import (
    parse_clip_id,
    parse_dir_overrides,
    read_audioset_starts,
    resolve,
    safe_id,
    youtube_audio_key,
)
from toolkit.data.prepare.common import (
    PrepareRun,
    SkipItem,
    Unpack,
    find_audio,
    prepare_splits,
    register_corpus,
    whole_file_cut,
)

log = logging.getLogger(__name__)

NAME = "wavcaps"
# subset → (source folder name, metadata JSON, key in the official blacklist JSONs)
SOURCES = {
    "as": ("AudioSet_SL", "as_final.json", "AudioSet"),
    "bbc": ("BBC_Sound_Effects", "bbc_final.json", "BBC_Sound_Effects"),
    "fsd": ("FreeSound", "fsd_final.json", "FreeSound"),
    "sb": ("SoundBible", "sb_final.json", "SoundBible"),
}
SUBSETS = tuple(SOURCES)
_ZIP_PREFIX = "mnt/fast/nobackup/scratch4weeks/xm00178/WavCaps/data/waveforms"


def subset_name(name: str) -> str:
    """Canonical subset key (``as``/``bbc``/``fsd``/``sb``) of a key or source folder name.

    Raises:
        ValueError: an unknown name.
    """
    low = name.strip().lower()
    for key, (folder, json_name, bl_key) in SOURCES.items():
        if low in (key, folder.lower(), json_name.split("_")[0], bl_key.lower()):
            return key
    folders = [v[0] for v in SOURCES.values()]
    raise ValueError(f"unknown WavCaps subset {name!r}; known: {list(SUBSETS)} or {folders}")


def iter_json_records(path: Path | str) -> Iterator[dict[str, Any]]:
    """The records of a WavCaps JSON (``{"data": [...]}`` or a top-level list), one at a time.

    Raises:
        ValueError: the file is not such a JSON document.
    """
    text = Path(path).read_text(encoding="utf-8")
    dec = json.JSONDecoder()
    n = len(text)

    def skip_ws(i: int) -> int:
        while i < n and text[i] in " \t\r\n":
            i += 1
        return i

    def array(i: int) -> Iterator[dict[str, Any]]:  # text[i] == "["
        i = skip_ws(i + 1)
        if i < n and text[i] == "]":
            return
        while True:
            record, i = dec.raw_decode(text, i)
            if isinstance(record, dict):
                yield record
            i = skip_ws(i)
            if i < n and text[i] == ",":
                i = skip_ws(i + 1)
                continue
            if i < n and text[i] == "]":
                return
            raise ValueError(f"{path}: malformed record list at character {i}")

    try:
        i = skip_ws(0)
        if i < n and text[i] == "[":
            yield from array(i)
            return
        if i >= n or text[i] != "{":
            raise ValueError(f"{path}: expected a JSON object or list")
        i = skip_ws(i + 1)
        while i < n and text[i] != "}":
            key, i = dec.raw_decode(text, i)
            i = skip_ws(i)
            if text[i] != ":":
                raise ValueError(f"{path}: malformed object at character {i}")
            i = skip_ws(i + 1)
            if key == "data" and text[i] == "[":
                yield from array(i)
                return
            _, i = dec.raw_decode(text, i)
            i = skip_ws(i)
            if i < n and text[i] == ",":
                i = skip_ws(i + 1)
        raise ValueError(f"{path}: no 'data' list")
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: invalid JSON: {e}") from None


def _read_blacklist(path: Path) -> dict[str, set[str]]:
    """``{subset: ids}`` of an official WavCaps blacklist JSON (``{"AudioSet": [...], ...}``)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected an object {{source: [ids]}}")
    out: dict[str, set[str]] = {}
    for source, ids in data.items():
        out.setdefault(subset_name(source), set()).update(_stem(str(i)) for i in ids)
    return out


def _stem(clip_id: str) -> str:
    return clip_id[:-4] if clip_id.lower().endswith((".wav", ".flac")) else clip_id


def default_audio_dir(root: Path, subset: str) -> Path:
    """The first existing clip folder of ``subset`` under ``root`` (see the module doc)."""
    folder = SOURCES[subset][0]
    candidates = [root / "audio" / folder, root / "Audio" / folder, root / f"{folder}_flac",
                  root / "waveforms" / f"{folder}_flac", root / folder,
                  root / _ZIP_PREFIX / f"{folder}_flac"]  # fmt: skip
    return next((c for c in candidates if c.is_dir()), candidates[0])


def _clip_cut(item: dict[str, Any]) -> Cut:
    """One cut of one WavCaps record (module level: picklable)."""
    if item.get("skip"):
        raise SkipItem(item["skip"], item["orig_id"])
    captions = clean_captions(item["captions"])
    if not captions:
        raise SkipItem("no_caption", item["orig_id"])
    path = Path(item["audio"]) if item.get("audio") else None
    if path is None or not path.is_file():
        path = find_audio(item["audio_dir"], item["stem"])
    if path is None:
        raise SkipItem("missing", f"{item['audio_dir']}/{item['stem']}.flac")
    return whole_file_cut(
        path, item["id"], "sound", NAME, captions=captions, styles=["short"] * len(captions),
        orig_id=item["orig_id"], split="train", audio_key=item.get("audio_key"),
    )  # fmt: skip


def _items(
    subset: str,
    json_path: Path,
    audio_dir: Path,
    root: Path,
    starts: dict[str, float],
    blacklist: set[str],
) -> Iterator[dict[str, Any]]:
    """Item dicts of one source's records (bad or blacklisted ones carry a ``skip`` reason)."""
    for n, record in enumerate(iter_json_records(json_path)):
        orig = str(record.get("id") or "").strip()
        if not orig:
            yield {"id": f"{NAME}_{subset}_record{n}", "orig_id": f"record {n} (no id)",
                   "skip": "bad_metadata"}  # fmt: skip
            continue
        stem = _stem(orig)
        key = None
        if subset == "as":
            parsed = parse_clip_id(stem)
            if parsed is not None:
                youtube_id, start = parsed
                start = start if start is not None else starts.get(youtube_id)
                key = youtube_audio_key(youtube_id, start) if start is not None else None
        audio = record.get("audio")
        audio = str(resolve(root, audio)) if isinstance(audio, str) and "/" in audio else None
        caption = record.get("caption")
        captions = caption if isinstance(caption, list) else [caption or ""]
        yield {
            "id": f"{NAME}_{subset}_{safe_id(stem)}",
            "orig_id": orig,
            "stem": stem,
            "audio": audio,
            "audio_dir": str(audio_dir),
            "captions": [str(c) for c in captions],
            "audio_key": key,
            "skip": "blacklisted" if stem in blacklist else None,
        }


def find_json(root: Path, subset: str) -> Path | None:
    """``<root>/json_files/<Source>/<x>_final.json`` (or the same under ``data/``, or flat)."""
    folder, name, _ = SOURCES[subset]
    for path in (root / "json_files" / folder / name, root / "data" / "json_files" / folder / name,
                 root / name):  # fmt: skip
        if path.is_file():
            return path
    return None


@register_corpus(NAME)
def prepare_wavcaps(
    corpus_dir: Path | str,
    output_dir: Path | str,
    subsets: tuple[str, ...] = SUBSETS,
    audio_dirs: tuple[str, ...] = (),
    audioset_segments: tuple[str, ...] = (),
    blacklist: str | None = None,
    min_duration: float = 0.5,
    **run: Unpack[PrepareRun],
) -> dict[str, CutSet]:
    """WavCaps JSON metadata + flac clips → ``wavcaps_cuts_train``.

    Args:
        subsets: which sources to prepare: ``as`` (AudioSet_SL), ``bbc`` (BBC_Sound_Effects),
            ``fsd`` (FreeSound), ``sb`` (SoundBible); folder names are accepted too. A source
            whose JSON is absent is skipped with a warning.
        audio_dirs: ``<subset>=<folder>`` overrides of the clip folders (relative folders are
            under ``corpus_dir``).
        audioset_segments: AudioSet segment CSVs / strong-label TSVs giving the start of the
            AudioSet_SL clips (for ``audio_key``).
        blacklist: an official WavCaps blacklist JSON (``{"AudioSet": [...], "FreeSound":
            [...]}``, e.g. ``blacklist_exclude_test_ac.json``): listed clips are left out.
        min_duration: clips shorter than this many seconds are skipped (``too_short``).
    """
    root = Path(corpus_dir)
    chosen = list(dict.fromkeys(subset_name(s) for s in subsets))
    normalized = []
    for entry in audio_dirs:
        key, sep, folder = str(entry).partition("=")
        normalized.append(f"{subset_name(key)}={folder}" if sep else str(entry))
    overrides = parse_dir_overrides(normalized, SUBSETS, root)
    jsons = {}
    for subset in chosen:
        path = find_json(root, subset)
        if path is None:
            log.warning("wavcaps: no %s under %s; subset %s skipped", SOURCES[subset][1],
                        root / "json_files" / SOURCES[subset][0], subset)  # fmt: skip
        else:
            jsons[subset] = path
    if not jsons:
        raise FileNotFoundError(f"no WavCaps metadata (json_files/<Source>/*_final.json) in {root}")
    banned = _read_blacklist(resolve(root, blacklist)) if blacklist else {}
    starts: dict[str, float] = {}
    if audioset_segments:
        starts = read_audioset_starts(resolve(root, p) for p in audioset_segments)

    def items() -> Iterator[dict[str, Any]]:
        for subset, path in jsons.items():
            audio_dir = overrides.get(subset) or default_audio_dir(root, subset)
            yield from _items(subset, path, audio_dir, root, starts, banned.get(subset, set()))

    return prepare_splits(
        NAME, output_dir, ["train"], lambda _: items(), _clip_cut, item_id=lambda x: x["id"],
        min_duration=min_duration, **run,
    )  # fmt: skip
