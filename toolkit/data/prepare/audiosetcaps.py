"""AudioSetCaps: LLM-generated captions of AudioSet, VGGSound and YouTube-8M clips.

The corpus ships one caption CSV per source (columns ``id,caption``), from the Hugging Face
dataset ``baijs/AudioSetCaps`` (folder ``Dataset/``):

* ``AudioSetCaps_caption.csv`` (subset ``audioset``): ids ``Y<youtube id>`` (e.g. ``Y---1_cCGK4M``);
* ``VGGSound_AudioSetCaps_caption.csv`` (``vggsound``): ids ``<youtube id>_<start>`` with a
  zero-padded start in seconds (e.g. ``OxPnZzn1_L8_000883``);
* ``YouTube-8M_AudioSetCaps_caption.csv`` (``youtube8m``): ids ``<youtube id>_<start>_<length>``
  (e.g. ``9eUrEyAR3xk_84_10``).

No audio is shipped: the clips are the user's local copies, one folder per subset
(``<corpus_dir>/audio/<subset>/<id>.<ext>`` by default). Every clip becomes one cut with its
caption (style ``short`` for a single sentence of at most ``short_max_words`` words, else
``detailed``), domain ``sound``, split ``train`` (``dev`` for ids listed in ``heldout_ids``) and
``audio_key = yt:<youtube id>:<start s>`` whenever the start is known (from the id, or for
AudioSet's bare ``Y<id>`` ids from the AudioSet segment lists given in ``audioset_segments``).

The id parsing and AudioSet segment reading here are also used by the WavCaps recipe.
"""

from __future__ import annotations

import csv
import functools
import logging
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from lhotse import CutSet
from lhotse.cut import Cut

from toolkit.data.cuts import clean_caption, clean_captions
from toolkit.data.prepare.common import (
    PrepareRun,
    SkipItem,
    Unpack,
    csv_rows,
    first_audio,
    prepare_splits,
    register_corpus,
    require_file,
    whole_file_cut,
)

log = logging.getLogger(__name__)

NAME = "audiosetcaps"
CAPTION_FILES = {
    "audioset": "AudioSetCaps_caption.csv",
    "vggsound": "VGGSound_AudioSetCaps_caption.csv",
    "youtube8m": "YouTube-8M_AudioSetCaps_caption.csv",
}
SUBSETS = tuple(CAPTION_FILES)
_NUM = r"\d+(?:\.\d+)?"
_CLIP_ID = re.compile(rf"^(?P<yt>[A-Za-z0-9_-]{{11}})(?:_(?P<start>{_NUM})(?:_{_NUM})?)?$")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)")
_ID_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def safe_id(text: str) -> str:
    """``text`` with every run of characters outside ``[A-Za-z0-9_.-]`` replaced by ``_``."""
    return _ID_SAFE.sub("_", text.strip()) or "clip"


def parse_clip_id(clip_id: str) -> tuple[str, float | None] | None:
    """``(youtube id, start seconds or None)`` of a YouTube-clip id, or None if it is not one.

    Accepted forms (an optional leading ``Y``, AudioSet's file-name prefix, is removed only when
    the id does not parse without it; real YouTube ids never end in ``_``, so this is
    unambiguous): ``<yt>``, ``Y<yt>``, ``<yt>_<start>``, ``<yt>_<start>_<end or length>`` and
    the same with ``Y``; starts may be zero-padded (``000883``) or decimal (``30.000``).
    """
    clip_id = clip_id.strip()
    for candidate in (clip_id, clip_id[1:] if clip_id.startswith("Y") else None):
        if candidate is None:
            continue
        m = _CLIP_ID.match(candidate)
        if m:
            start = m.group("start")
            return m.group("yt"), float(start) if start is not None else None
    return None


def youtube_audio_key(youtube_id: str, start: float) -> str:
    """The canonical ``yt:<11-char id>:<integer start s>`` key of a YouTube clip."""
    return f"yt:{youtube_id}:{int(start)}"


def read_audioset_starts(
    paths: Iterable[Path | str], wanted: set[str] | None = None
) -> dict[str, float]:
    """``{youtube id: clip start s}`` from AudioSet segment lists, streamed.

    Reads the official segment CSVs (``balanced_train_segments.csv``,
    ``unbalanced_train_segments.csv``, ``eval_segments.csv``: ``#`` comment lines, then
    ``YTID, start_seconds, end_seconds, positive_labels``) and the strong-label TSVs
    (``audioset_train_strong.tsv`` / ``audioset_eval_strong.tsv``: a ``segment_id`` column of
    ``<yt>_<start ms>``). ``wanted`` restricts the map to those ids (memory).

    Raises:
        FileNotFoundError: a listed file does not exist.
    """
    starts: dict[str, float] = {}
    for path in paths:
        path = require_file(Path(path), "AudioSet segment list")
        with open(path, encoding="utf-8", newline="") as f:
            first = f.readline()
            if "segment_id" in first:  # strong labels: segment_id <yt>_<start ms>
                header = first.rstrip("\r\n").split("\t")
                col = header.index("segment_id")
                for line in f:
                    fields = line.rstrip("\r\n").split("\t")
                    yt, _, ms = fields[col].rpartition("_") if len(fields) > col else ("", "", "")
                    if yt and ms.isdigit() and (wanted is None or yt in wanted):
                        starts.setdefault(yt, int(ms) / 1000.0)
                continue
            f.seek(0)
            for row in csv.reader((ln for ln in f if not ln.startswith("#")),
                                  skipinitialspace=True):  # fmt: skip
                if len(row) < 2 or (wanted is not None and row[0] not in wanted):
                    continue
                try:
                    starts.setdefault(row[0], float(row[1]))
                except ValueError:
                    continue  # a header line without '#'
    return starts


def caption_style_of(caption: str, short_max_words: int) -> str:
    """``short`` for one sentence of at most ``short_max_words`` words, else ``detailed``."""
    sentences = _SENTENCE_END.split(clean_caption(caption))
    if len(sentences) == 1 and len(sentences[0].split()) <= short_max_words:
        return "short"
    return "detailed"


def resolve(root: Path, path: Path | str) -> Path:
    """``path`` if absolute, else ``root / path`` (pathlib's join keeps an absolute right side)."""
    return root / path


def parse_dir_overrides(
    entries: Iterable[str], known: Iterable[str], root: Path
) -> dict[str, Path]:
    """``["<subset>=<dir>", ...]`` → ``{subset: dir}`` (relative dirs under ``root``).

    Raises:
        ValueError: an entry without ``=`` or naming an unknown subset.
    """
    known = set(known)
    out: dict[str, Path] = {}
    for entry in entries:
        key, sep, value = str(entry).partition("=")
        key = key.strip()
        if not sep or not value.strip():
            raise ValueError(f"audio_dirs entry {entry!r} is not <subset>=<folder>")
        if key not in known:
            raise ValueError(f"audio_dirs entry {entry!r}: unknown subset (known: {sorted(known)})")
        out[key] = resolve(root, value.strip())
    return out


def _read_id_list(path: Path) -> set[str]:
    with open(require_file(path, "held-out id list"), encoding="utf-8") as f:
        return {line.strip() for line in f if line.strip() and not line.startswith("#")}


def _clip_cut(item: dict[str, Any], short_max_words: int) -> Cut:
    """One cut of one caption row (module level: picklable for worker processes)."""
    captions = clean_captions(item["captions"])
    if not captions:
        raise SkipItem("no_caption", item["orig_id"])
    path = first_audio((item["audio_dir"], stem) for stem in item["stems"])
    if path is None:
        raise SkipItem("missing", f"{item['audio_dir']}/{item['stems'][0]}.*")
    styles = [caption_style_of(c, short_max_words) for c in captions]
    return whole_file_cut(
        path, item["id"], "sound", NAME, captions=captions, styles=styles,
        orig_id=item["orig_id"], split=item["split"], audio_key=item.get("audio_key"),
    )  # fmt: skip


def _caption_rows(path: Path) -> Iterator[tuple[str, list[str]]]:
    """``(id, captions)`` of a caption CSV, streamed; consecutive rows of one id are merged."""
    current: str | None = None
    captions: list[str] = []
    for row in csv_rows(path, ("id", "caption")):
        clip_id = (row.get("id") or "").strip()
        if not clip_id:
            continue
        if clip_id != current:
            if current is not None:
                yield current, captions
            current, captions = clip_id, []
        captions.append(row.get("caption") or "")
    if current is not None:
        yield current, captions


def _items(
    subset: str,
    csv_path: Path,
    audio_dir: Path,
    starts: dict[str, float],
    heldout: set[str],
    split: str,
) -> Iterator[dict[str, Any]]:
    """Item dicts of one subset for one split (``dev`` = held-out ids, ``train`` = the rest)."""
    for clip_id, captions in _caption_rows(csv_path):
        parsed = parse_clip_id(clip_id)
        youtube_id, start = parsed if parsed else (None, None)
        if youtube_id is not None and start is None:
            start = starts.get(youtube_id)
        key = youtube_audio_key(youtube_id, start) if youtube_id and start is not None else None
        is_heldout = bool(heldout) and bool({clip_id, youtube_id, key} & heldout)
        if is_heldout != (split == "dev"):
            continue
        stems = [clip_id]
        if youtube_id and clip_id.startswith("Y") and clip_id[1:].startswith(youtube_id):
            stems.append(clip_id[1:])
        yield {
            "id": f"{NAME}_{subset}_{safe_id(clip_id)}",
            "orig_id": clip_id,
            "audio_dir": str(audio_dir),
            "stems": stems,
            "captions": captions,
            "audio_key": key,
            "split": split,
        }


def find_caption_csv(root: Path, subset: str) -> Path | None:
    """``<root>/Dataset/<file>`` (the Hugging Face layout) or ``<root>/<file>`` of a subset."""
    for path in (root / "Dataset" / CAPTION_FILES[subset], root / CAPTION_FILES[subset]):
        if path.is_file():
            return path
    return None


@register_corpus(NAME)
def prepare_audiosetcaps(
    corpus_dir: Path | str,
    output_dir: Path | str,
    subsets: tuple[str, ...] = SUBSETS,
    audio_dirs: tuple[str, ...] = (),
    audioset_segments: tuple[str, ...] = (),
    heldout_ids: str | None = None,
    short_max_words: int = 20,
    min_duration: float = 0.5,
    **run: Unpack[PrepareRun],
) -> dict[str, CutSet]:
    """AudioSetCaps caption CSVs + local clips → ``audiosetcaps_cuts_train`` (+ ``_dev``).

    Args:
        subsets: which of ``audioset``, ``vggsound``, ``youtube8m`` to prepare (a subset whose
            caption CSV is absent is skipped with a warning).
        audio_dirs: ``<subset>=<folder>`` overrides of the clip folders (default
            ``<corpus_dir>/audio/<subset>``; relative folders are under ``corpus_dir``).
        audioset_segments: AudioSet segment CSVs / strong-label TSVs giving the start of the
            ``Y<id>`` clips (for ``audio_key``); without them those clips get no ``audio_key``.
        heldout_ids: text file of ids (CSV id, YouTube id or ``yt:<id>:<s>`` key), one a line;
            those clips go to the ``dev`` manifest instead of ``train``.
        short_max_words: a one-sentence caption of at most this many words is ``short``, any
            other ``detailed`` (0: every caption ``detailed``).
        min_duration: clips shorter than this many seconds are skipped (``too_short``).
    """
    root = Path(corpus_dir)
    unknown = sorted(set(subsets) - set(SUBSETS))
    if unknown:
        raise ValueError(f"unknown AudioSetCaps subset(s) {unknown}; known: {list(SUBSETS)}")
    overrides = parse_dir_overrides(audio_dirs, SUBSETS, root)
    csvs = {}
    for subset in subsets:
        path = find_caption_csv(root, subset)
        if path is None:
            log.warning("audiosetcaps: no %s under %s(/Dataset); subset %s skipped",
                        CAPTION_FILES[subset], root, subset)  # fmt: skip
        else:
            csvs[subset] = path
    if not csvs:
        raise FileNotFoundError(
            f"no AudioSetCaps caption CSV ({', '.join(CAPTION_FILES[s] for s in subsets)}) "
            f"under {root} or {root / 'Dataset'}"
        )
    starts: dict[str, float] = {}
    if audioset_segments:
        starts = read_audioset_starts(resolve(root, p) for p in audioset_segments)
        log.info("audiosetcaps: %d AudioSet segment starts read", len(starts))
    heldout = _read_id_list(resolve(root, heldout_ids)) if heldout_ids else set()
    fn = functools.partial(_clip_cut, short_max_words=short_max_words)

    def items(split: str) -> Iterator[dict[str, Any]]:
        for subset, path in csvs.items():
            audio_dir = overrides.get(subset, root / "audio" / subset)
            yield from _items(subset, path, audio_dir, starts, heldout, split)

    return prepare_splits(
        NAME,
        output_dir,
        (("train", "dev") if heldout else ("train",)),
        items,
        fn,
        item_id=lambda x: x["id"],
        min_duration=min_duration,
        **run,
    )
