"""ESC-50 (environmental sound classification, 50 classes, 5 folds) → per-fold cut manifests.

Reads ``meta/esc50.csv`` (``filename,fold,target,category,esc10,src_file,take``) and the clips
``audio/<filename>`` (5 s, 44.1 kHz mono wav). The corpus is evaluated by 5-fold
cross-validation over its official folds, so it is written as ``esc50_cuts_fold{1..5}`` with
metadata ``fold`` (int). One cut per clip (``esc50_<filename stem>``), no caption (label-only
evaluation corpus); label ``sound_event`` = ``category`` with underscores turned into spaces
(``door_wood_knock`` → ``door wood knock``).
"""

from __future__ import annotations

from pathlib import Path

from lhotse import CutSet

from toolkit.data.prepare.common import prepare_fold_corpus, register_corpus, require_file

NAME = "esc50"
NUM_FOLDS = 5


@register_corpus(NAME)
def prepare_esc50(
    corpus_dir: Path | str,
    output_dir: Path | str,
    num_jobs: int = 1,
    force: bool = False,
) -> dict[str, CutSet]:
    """ESC-50 → ``esc50_cuts_fold{1..5}`` (label ``sound_event``, metadata ``fold``, no captions)."""
    root = Path(corpus_dir)
    meta = require_file(
        root / "meta" / "esc50.csv", "ESC-50 metadata", " (see docs/corpora/esc50.md)"
    )
    return prepare_fold_corpus(
        NAME, meta, NUM_FOLDS, "filename", "category", root / "audio", output_dir,
        fold_subdirs=False, num_jobs=num_jobs, force=force,
    )  # fmt: skip
