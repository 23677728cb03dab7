"""AudioCaps (v1 and 2.0): human captions of 10-s AudioSet clips.

Metadata: ``train.csv``, ``val.csv``, ``test.csv`` with columns
``audiocap_id,youtube_id,start_time,caption``, one row per caption (v1: one caption per train
clip, five per val/test clip; 2.0: several per clip in every split). The CSVs are looked up in
``csv_dir`` (default: the first of ``<corpus_dir>``, ``dataset``, ``dataset2.0``,
``csv_files_v1``, ``csv_files_v2`` holding one); ``valid.csv``/``validation.csv`` are accepted
for ``val.csv`` and aac-datasets' ``train_v2.csv`` for ``train.csv``.

Audio: the user's local clips (AudioCaps ships none), looked up per split as
``<audio_dir>/<split folder>/<stem>.<ext>`` and then ``<audio_dir>/<stem>.<ext>``, where the
split folder is ``train``, ``val``/``valid``/``validation`` or ``test`` and the stem is
``<youtube_id>_<start_time>`` (aac-datasets' naming) or ``<youtube_id>`` (or ``Y<youtube_id>``).
``audio_dir`` defaults to the first existing of ``audio``, ``audio_32000Hz``, ``waveforms``
(else ``corpus_dir`` itself).

All rows of one clip ``(youtube_id, start_time)`` become one cut with every caption (style
``short``), domain ``sound``, ``audio_key = yt:<youtube_id>:<start_time>``; val → ``dev``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from lhotse import CutSet
from lhotse.cut import Cut

from toolkit.data.cuts import clean_captions
from toolkit.data.prepare.audiosetcaps import resolve, safe_id, youtube_audio_key
from toolkit.data.prepare.common import (
    PrepareRun,
    SkipItem,
    Unpack,
    csv_rows,
    first_audio,
    prepare_splits,
    register_corpus,
    whole_file_cut,
)

log = logging.getLogger(__name__)

NAME = "audiocaps"
CSV_NAMES = {
    "train": ("train.csv", "train_v2.csv"),
    "dev": ("val.csv", "valid.csv", "validation.csv"),
    "test": ("test.csv",),
}
SPLIT_FOLDERS = {"train": ("train",), "dev": ("val", "valid", "validation"), "test": ("test",)}
CSV_DIRS = (".", "dataset", "dataset2.0", "csv_files_v1", "csv_files_v2")
AUDIO_DIRS = ("audio", "audio_32000Hz", "waveforms")
COLUMNS = ("audiocap_id", "youtube_id", "start_time", "caption")


def find_csv_dir(root: Path, csv_dir: str) -> Path:
    """The folder of the split CSVs (``csv_dir`` if given, else the first candidate with one).

    Raises:
        FileNotFoundError: no split CSV there.
    """
    candidates = [resolve(root, csv_dir)] if csv_dir else [root / d for d in CSV_DIRS]
    for folder in candidates:
        if any((folder / n).is_file() for names in CSV_NAMES.values() for n in names):
            return folder
    raise FileNotFoundError(
        f"no AudioCaps CSV (train.csv, val.csv, test.csv) in {', '.join(map(str, candidates))}"
    )


def read_split_csv(path: Path) -> list[dict[str, Any]]:
    """Clips of one split CSV, rows grouped by ``(youtube_id, start_time)`` in first-seen order.

    A clip is ``{youtube_id, start, captions, audiocap_ids}``; a row with an empty YouTube id or
    a non-numeric start gives a clip with ``bad`` set to the row number (skipped later as
    ``bad_metadata``).

    Raises:
        ValueError: the CSV lacks one of the AudioCaps columns.
    """
    clips: dict[tuple[str, int], dict[str, Any]] = {}
    for n, row in enumerate(csv_rows(path, COLUMNS), 2):
        youtube_id = (row["youtube_id"] or "").strip()
        try:
            start = int(float(row["start_time"]))
        except (TypeError, ValueError):
            start = -1
        if not youtube_id or start < 0:
            clips[(f"#row{n}", n)] = {"youtube_id": youtube_id or "none", "start": n,
                                      "captions": [], "audiocap_ids": [], "bad": n}  # fmt: skip
            continue
        clip = clips.setdefault(
            (youtube_id, start),
            {"youtube_id": youtube_id, "start": start, "captions": [], "audiocap_ids": []},
        )
        clip["captions"].append(row["caption"] or "")
        clip["audiocap_ids"].append((row["audiocap_id"] or "").strip())
    return list(clips.values())


def _clip_cut(item: dict[str, Any]) -> Cut:
    """One cut of one AudioCaps clip (module level: picklable)."""
    if item.get("bad"):
        raise SkipItem("bad_metadata", item["orig_id"])
    captions = clean_captions(item["captions"])
    if not captions:
        raise SkipItem("no_caption", item["orig_id"])
    yt, start = item["youtube_id"], item["start"]
    stems = (f"{yt}_{start}", yt, f"Y{yt}")
    path = first_audio((d, s) for d in item["dirs"] for s in stems)
    if path is None:
        raise SkipItem("missing", f"{item['dirs'][0]}/{stems[0]}.* or {stems[1]}.*")
    return whole_file_cut(
        path, item["id"], "sound", NAME, captions=captions, styles=["short"] * len(captions),
        orig_id=item["orig_id"], split=item["split"], audio_key=youtube_audio_key(yt, start),
    )  # fmt: skip


def _item(clip: dict[str, Any], split: str, csv_path: Path, dirs: list[str]) -> dict[str, Any]:
    """The picklable item of one grouped clip (a bad CSV row keeps its row number)."""
    yt, start, bad = clip["youtube_id"], clip["start"], clip.get("bad")
    return {
        "id": f"{NAME}_{split}_row{bad}" if bad else f"{NAME}_{safe_id(yt)}_{start}",
        "orig_id": f"{csv_path.name} row {bad}: no YouTube id or start" if bad else f"{yt}_{start}",
        "bad": bad,
        "youtube_id": yt,
        "start": start,
        "captions": clip["captions"],
        "dirs": dirs,
        "split": split,
    }


@register_corpus(NAME)
def prepare_audiocaps(
    corpus_dir: Path | str,
    output_dir: Path | str,
    csv_dir: str = "",
    audio_dir: str = "",
    splits: tuple[str, ...] = ("train", "dev", "test"),
    min_duration: float = 0.5,
    **run: Unpack[PrepareRun],
) -> dict[str, CutSet]:
    """AudioCaps CSVs + local clips → ``audiocaps_cuts_{train,dev,test}``.

    Args:
        csv_dir: folder of ``train.csv``/``val.csv``/``test.csv`` (relative to ``corpus_dir``;
            empty: search ``.``, ``dataset``, ``dataset2.0``, ``csv_files_v1``, ``csv_files_v2``).
        audio_dir: root of the clip folders (relative to ``corpus_dir``; empty: first existing
            of ``audio``, ``audio_32000Hz``, ``waveforms``, else ``corpus_dir``).
        splits: which of ``train``, ``dev`` (val), ``test`` to prepare (a split whose CSV is
            absent is skipped with a warning).
        min_duration: clips shorter than this many seconds are skipped (``too_short``).
    """
    root = Path(corpus_dir)
    unknown = sorted(set(splits) - set(CSV_NAMES))
    if unknown:
        raise ValueError(f"unknown AudioCaps split(s) {unknown}; known: {list(CSV_NAMES)}")
    csv_root = find_csv_dir(root, csv_dir)
    if audio_dir:
        audio_root = resolve(root, audio_dir)
    else:
        audio_root = next((root / d for d in AUDIO_DIRS if (root / d).is_dir()), root)
    csvs = {}
    for split in splits:
        path = next((csv_root / n for n in CSV_NAMES[split] if (csv_root / n).is_file()), None)
        if path is None:
            log.warning("audiocaps: no %s in %s; split %s skipped", CSV_NAMES[split][0],
                        csv_root, split)  # fmt: skip
        else:
            csvs[split] = path
    if not csvs:
        raise FileNotFoundError(f"no AudioCaps CSV for split(s) {list(splits)} in {csv_root}")

    def items(split: str) -> list[dict[str, Any]]:
        dirs = [str(audio_root / f) for f in SPLIT_FOLDERS[split] if (audio_root / f).is_dir()]
        dirs.append(str(audio_root))
        return [_item(c, split, csvs[split], dirs) for c in read_split_csv(csvs[split])]

    return prepare_splits(
        NAME, output_dir, csvs, items, _clip_cut, item_id=lambda x: x["id"],
        min_duration=min_duration, **run,
    )  # fmt: skip
