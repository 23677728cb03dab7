"""FSD50K (Freesound Dataset 50k): multi-label sound event evaluation corpus → cut manifests.

Reads the corpus's own ground truth, ``FSD50K.ground_truth/dev.csv`` (``fname,labels,mids,split``;
``split`` is ``train`` or ``val``) and ``FSD50K.ground_truth/eval.csv`` (``fname,labels,mids``),
where ``labels`` is a comma-separated list of AudioSet class names with underscores
(``Electric_guitar,Guitar,Music``). Audio: ``FSD50K.dev_audio/<fname>.wav`` and
``FSD50K.eval_audio/<fname>.wav`` (any format :func:`find_audio` knows, if re-encoded).

Splits: dev.csv ``train`` → ``train``, ``val`` → ``dev``, eval.csv → ``test``. One cut per clip
(``fsd50k_<fname>``), no caption (label-only evaluation corpus), multi-label task
``sound_events`` = the clip's class names with underscores turned into spaces (``Electric
guitar``), in the csv's order (leaf classes first, then their ancestors).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lhotse import CutSet
from lhotse.cut import Cut

from toolkit.data.prepare.common import (
    PrepareRun,
    SkipItem,
    Unpack,
    csv_rows,
    find_audio,
    prepare_splits,
    readable_label,
    register_corpus,
    require_file,
    whole_file_cut,
)

log = logging.getLogger(__name__)

NAME = "fsd50k"
_DEV_SPLITS = {"train": "train", "val": "dev"}


def _clip_cut(item: dict[str, Any]) -> Cut:
    """One FSD50K clip → cut with ``sound_events`` (raises SkipItem on bad metadata/audio)."""
    labels = [readable_label(x) for x in item["labels"].split(",") if x.strip()]
    if not labels:
        raise SkipItem("bad_metadata", f"{item['fname']}: no labels")
    path = find_audio(item["audio_dir"], item["fname"])
    return whole_file_cut(
        path, f"{NAME}_{item['fname']}", "sound", NAME, {"sound_events": labels},
        orig_id=item["fname"], split=item["split"],
    )  # fmt: skip


def _rows(path: Path, split: str, audio_dir: Path) -> Iterator[dict[str, Any]]:
    """Items of ``split`` from one ground-truth csv, streamed."""
    unknown = 0
    for row in csv_rows(path, ("fname", "labels")):
        if "split" in row and row["split"] is not None:
            row_split = _DEV_SPLITS.get(row["split"].strip())
            if row_split is None:
                unknown += 1
                continue
        else:
            row_split = "test"
        if row_split == split:
            yield {
                "fname": row["fname"].strip(),
                "labels": row["labels"] or "",
                "split": split,
                "audio_dir": str(audio_dir),
            }
    if unknown:
        log.warning("%s: %d row(s) with a split other than train/val ignored", path, unknown)


@register_corpus(NAME)
def prepare_fsd50k(
    corpus_dir: Path | str,
    output_dir: Path | str,
    ground_truth_dir: str = "FSD50K.ground_truth",
    dev_audio_dir: str = "FSD50K.dev_audio",
    eval_audio_dir: str = "FSD50K.eval_audio",
    min_duration: float = 0.0,
    **run: Unpack[PrepareRun],
) -> dict[str, CutSet]:
    """FSD50K → ``fsd50k_cuts_{train,dev,test}`` (multi-label ``sound_events``, no captions).

    Args:
        ground_truth_dir: folder (under ``corpus_dir``) holding ``dev.csv`` and ``eval.csv``.
        dev_audio_dir, eval_audio_dir: folders (under ``corpus_dir``) of the dev/eval clips.
        min_duration: clips shorter than this (s) are skipped as ``too_short``.
    """
    root = Path(corpus_dir)
    gt = root / ground_truth_dir
    dev_csv, eval_csv = gt / "dev.csv", gt / "eval.csv"
    for path in (dev_csv, eval_csv):
        require_file(path, "FSD50K ground truth", " (see docs/corpora/fsd50k.md)")
    sources = {
        "train": (dev_csv, root / dev_audio_dir),
        "dev": (dev_csv, root / dev_audio_dir),
        "test": (eval_csv, root / eval_audio_dir),
    }
    return prepare_splits(
        NAME,
        output_dir,
        sources,
        lambda split: _rows(sources[split][0], split, sources[split][1]),
        _clip_cut,
        item_id=lambda x: x["fname"],
        min_duration=min_duration,
        **run,
    )
