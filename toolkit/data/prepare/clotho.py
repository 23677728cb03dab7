"""Clotho v2: Freesound clips of 15–30 s, each with five crowd-sourced captions.

The release ships one captions CSV per split, ``clotho_captions_{development,validation,
evaluation}.csv`` with columns ``file_name, caption_1 ... caption_5``, and the audio extracted
from ``clotho_audio_<split>.7z`` into ``<split>/<file_name>`` (``file_name`` includes ``.wav``; a
name without an extension is looked up with any audio extension). Splits: development → ``train``,
validation → ``dev``, evaluation → ``test``.

Clotho file names contain spaces, brackets, ampersands, non-ASCII letters...; cut ids are made
safe (``clotho_<name with every other character replaced by _>``, plus an 8-hex hash of the
original name whenever that changed it, so two names never collide) and the original name is
kept in ``orig_id``. Clotho is not built on YouTube clips, so ``audio_key`` is
``clotho:<file_name>``.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lhotse import CutSet
from lhotse.cut import Cut

from toolkit.data.prepare.common import (
    AUDIO_EXTENSIONS,
    PrepareRun,
    SkipItem,
    Unpack,
    find_audio,
    prepare_splits,
    register_corpus,
    whole_file_cut,
)

NAME = "clotho"
SPLITS = {"development": "train", "validation": "dev", "evaluation": "test"}
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def safe_cut_id(file_name: str) -> str:
    """A cut id made of ``[A-Za-z0-9_.-]`` for a Clotho file name (extension dropped)."""
    stem = file_name
    if Path(file_name).suffix.lower() in AUDIO_EXTENSIONS:
        stem = file_name[: -len(Path(file_name).suffix)]
    safe = _UNSAFE.sub("_", stem).strip("_.") or "clip"
    if safe != stem:
        safe += "_" + hashlib.sha1(file_name.encode()).hexdigest()[:8]
    return f"{NAME}_{safe}"


def _item_cut(item: dict[str, Any]) -> Cut:
    if not item["captions"]:
        raise SkipItem("no_caption", item["file_name"])
    audio_dir = Path(item["audio_dir"])
    name = item["file_name"]
    path: Path | None = audio_dir / name
    if Path(name).suffix.lower() not in AUDIO_EXTENSIONS:
        path = find_audio(audio_dir, name)
    return whole_file_cut(
        path if path is not None else audio_dir / name, item["id"], "sound", NAME,
        captions=item["captions"], styles=["short"] * len(item["captions"]), orig_id=name,
        audio_key=f"clotho:{name}", split=item["split"],
    )  # fmt: skip


def _rows(root: Path, official: str) -> Iterator[dict[str, Any]]:
    """Items of one official split: rows of ``clotho_captions_<official>.csv``, streamed."""
    csv_path, audio_dir = root / f"clotho_captions_{official}.csv", root / official
    with open(csv_path, encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        fields = reader.fieldnames or []
        caption_cols = sorted(
            (c for c in fields if re.fullmatch(r"caption_\d+", c)),
            key=lambda c: int(c.split("_")[1]),
        )
        if "file_name" not in fields or not caption_cols:
            raise ValueError(f"{csv_path}: expected columns file_name, caption_1..caption_5")
        for row in reader:
            name = (row["file_name"] or "").strip()
            if not name:
                continue
            yield {
                "id": safe_cut_id(name),
                "file_name": name,
                "audio_dir": str(audio_dir),
                "captions": [row[c] for c in caption_cols if (row[c] or "").strip()],
                "split": official,
            }


@register_corpus(NAME)
def prepare_clotho(
    corpus_dir: Path | str,
    output_dir: Path | str,
    min_duration: float = 0.5,
    **run: Unpack[PrepareRun],
) -> dict[str, CutSet]:
    """Clotho v2 (captions CSVs + split audio folders) → ``clotho_cuts_{train,dev,test}``.

    Args:
        min_duration: clips shorter than this (s) are skipped as ``too_short``.

    Splits whose CSV is absent are left out (e.g. an evaluation-only copy); none at all is an
    error.
    """
    root = Path(corpus_dir)
    present = {s: o for o, s in SPLITS.items() if (root / f"clotho_captions_{o}.csv").is_file()}
    if not present:
        raise FileNotFoundError(f"no clotho_captions_{{{','.join(SPLITS)}}}.csv under {root}")
    return prepare_splits(
        NAME, output_dir, present, lambda split: _rows(root, present[split]), _item_cut,
        item_id=lambda x: x["file_name"], min_duration=min_duration, **run,
    )  # fmt: skip
