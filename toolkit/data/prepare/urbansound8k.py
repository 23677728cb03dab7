"""UrbanSound8K (urban sound classification, 10 classes, 10 folds) → per-fold cut manifests.

Reads ``metadata/UrbanSound8K.csv`` (``slice_file_name,fsID,start,end,salience,fold,classID,
class``) and the slices ``audio/fold<k>/<slice_file_name>`` (≤ 4 s wav at the sample rate, bit
depth and channel count of their Freesound source: 8–192 kHz, mono or stereo). ``start``/``end``
locate the slice in its *Freesound* recording (``fsID``); the slice files are already cut, so
each file is one whole cut. Evaluated by 10-fold cross-validation over the official folds:
written as ``urbansound8k_cuts_fold{1..10}`` with metadata ``fold`` (int). Cut id
``urbansound8k_<slice stem>``, no caption (label-only evaluation corpus), label ``sound_event`` =
``class`` with underscores turned into spaces (``dog_bark`` → ``dog bark``).
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lhotse import CutSet
from lhotse.cut import Cut

from toolkit.data.cuts import caption_cut
from toolkit.data.prepare.common import (
    SkipItem,
    lazy_manifests,
    manifest_path,
    prepare_in_parts,
    read_recording,
    register_corpus,
)

log = logging.getLogger(__name__)

NAME = "urbansound8k"
NUM_FOLDS = 10


def _clip_cut(item: dict[str, Any]) -> Cut:
    """One UrbanSound8K slice → cut with ``sound_event`` (SkipItem on bad metadata/audio)."""
    label = " ".join((item["class"] or "").replace("_", " ").split())
    if not label:
        raise SkipItem("bad_metadata", f"{item['slice_file_name']}: no class")
    cut_id = f"{NAME}_{Path(item['slice_file_name']).stem}"
    path = Path(item["audio_dir"]) / f"fold{item['fold']}" / item["slice_file_name"]
    rec = read_recording(path, cut_id)
    return caption_cut(
        rec, cut_id, [], [], "sound", NAME, {"sound_event": label},
        orig_id=item["slice_file_name"], metadata={"fold": item["fold"]},
    )  # fmt: skip


def _fold_rows(meta: Path, fold: int, audio_dir: Path) -> Iterator[dict[str, Any]]:
    """Rows of ``meta`` in ``fold``, streamed (rows with a non-integer fold are logged)."""
    bad = 0
    with open(meta, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        missing = {"slice_file_name", "fold", "class"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{meta}: missing column(s) {sorted(missing)}")
        for row in reader:
            try:
                row_fold = int(row["fold"])
            except (TypeError, ValueError):
                bad += 1
                continue
            if row_fold == fold:
                yield {
                    "slice_file_name": row["slice_file_name"].strip(),
                    "class": row["class"],
                    "fold": fold,
                    "audio_dir": str(audio_dir),
                }
    if bad and fold == 1:
        log.warning("%s: %d row(s) without an integer fold ignored", meta, bad)


@register_corpus(NAME)
def prepare_urbansound8k(
    corpus_dir: Path | str,
    output_dir: Path | str,
    num_jobs: int = 1,
    force: bool = False,
) -> dict[str, CutSet]:
    """UrbanSound8K → ``urbansound8k_cuts_fold{1..10}`` (label ``sound_event``, no captions)."""
    root = Path(corpus_dir)
    meta = root / "metadata" / "UrbanSound8K.csv"
    if not meta.is_file():
        raise FileNotFoundError(
            f"UrbanSound8K metadata {meta} not found (see docs/corpora/urbansound8k.md)"
        )
    summaries = {
        f"fold{k}": prepare_in_parts(
            _fold_rows(meta, k, root / "audio"),
            _clip_cut,
            manifest_path(output_dir, NAME, f"fold{k}"),
            item_id=lambda x: x["slice_file_name"],
            num_jobs=num_jobs,
            desc=f"{NAME} fold{k}",
            force=force,
        )  # fmt: skip
        for k in range(1, NUM_FOLDS + 1)
    }
    return lazy_manifests(summaries)
