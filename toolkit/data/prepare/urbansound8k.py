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

from pathlib import Path

from lhotse import CutSet

from toolkit.data.prepare.common import prepare_fold_corpus, register_corpus, require_file

NAME = "urbansound8k"
NUM_FOLDS = 10


@register_corpus(NAME)
def prepare_urbansound8k(
    corpus_dir: Path | str,
    output_dir: Path | str,
    num_jobs: int = 1,
    force: bool = False,
) -> dict[str, CutSet]:
    """UrbanSound8K → ``urbansound8k_cuts_fold{1..10}`` (label ``sound_event``, no captions)."""
    root = Path(corpus_dir)
    meta = require_file(
        root / "metadata" / "UrbanSound8K.csv",
        "UrbanSound8K metadata",
        " (see docs/corpora/urbansound8k.md)",
    )
    return prepare_fold_corpus(
        NAME, meta, NUM_FOLDS, "slice_file_name", "class", root / "audio", output_dir,
        fold_subdirs=True, num_jobs=num_jobs, force=force,
    )  # fmt: skip
