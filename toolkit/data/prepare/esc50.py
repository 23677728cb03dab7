"""ESC-50 (environmental sound classification, 50 classes, 5 folds) → per-fold cut manifests.

Reads ``meta/esc50.csv`` (``filename,fold,target,category,esc10,src_file,take``) and the clips
``audio/<filename>`` (5 s, 44.1 kHz mono wav). The corpus is evaluated by 5-fold
cross-validation over its official folds, so it is written as ``esc50_cuts_fold{1..5}`` with
metadata ``fold`` (int). One cut per clip (``esc50_<filename stem>``), no caption (label-only
evaluation corpus); label ``sound_event`` = ``category`` with underscores turned into spaces
(``door_wood_knock`` → ``door wood knock``).
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

NAME = "esc50"
NUM_FOLDS = 5
COLUMNS = ("filename", "fold", "target", "category", "esc10", "src_file", "take")


def _clip_cut(item: dict[str, Any]) -> Cut:
    """One ESC-50 clip → cut with ``sound_event`` (raises SkipItem on bad metadata/audio)."""
    category = " ".join((item["category"] or "").replace("_", " ").split())
    if not category:
        raise SkipItem("bad_metadata", f"{item['filename']}: no category")
    cut_id = f"{NAME}_{Path(item['filename']).stem}"
    rec = read_recording(Path(item["audio_dir"]) / item["filename"], cut_id)
    return caption_cut(
        rec, cut_id, [], [], "sound", NAME, {"sound_event": category},
        orig_id=item["filename"], metadata={"fold": item["fold"]},
    )  # fmt: skip


def _fold_rows(meta: Path, fold: int, audio_dir: Path) -> Iterator[dict[str, Any]]:
    """Rows of ``meta`` in ``fold``, streamed (rows with a non-integer fold are logged)."""
    bad = 0
    with open(meta, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        missing = {"filename", "fold", "category"} - set(reader.fieldnames or [])
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
                    "filename": row["filename"].strip(),
                    "category": row["category"],
                    "fold": fold,
                    "audio_dir": str(audio_dir),
                }
    if bad and fold == 1:
        log.warning("%s: %d row(s) without an integer fold ignored", meta, bad)


@register_corpus(NAME)
def prepare_esc50(
    corpus_dir: Path | str,
    output_dir: Path | str,
    num_jobs: int = 1,
    force: bool = False,
) -> dict[str, CutSet]:
    """ESC-50 → ``esc50_cuts_fold{1..5}`` (label ``sound_event``, metadata ``fold``, no captions)."""
    root = Path(corpus_dir)
    meta = root / "meta" / "esc50.csv"
    if not meta.is_file():
        raise FileNotFoundError(f"ESC-50 metadata {meta} not found (see docs/corpora/esc50.md)")
    summaries = {
        f"fold{k}": prepare_in_parts(
            _fold_rows(meta, k, root / "audio"),
            _clip_cut,
            manifest_path(output_dir, NAME, f"fold{k}"),
            item_id=lambda x: x["filename"],
            num_jobs=num_jobs,
            desc=f"{NAME} fold{k}",
            force=force,
        )  # fmt: skip
        for k in range(1, NUM_FOLDS + 1)
    }
    return lazy_manifests(summaries)
