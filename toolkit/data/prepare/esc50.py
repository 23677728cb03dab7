"""ESC-50 (environmental sound classification, 50 classes, 5 folds) → per-fold cut manifests.

Reads ``meta/esc50.csv`` (``filename,fold,target,category,esc10,src_file,take``) and the clips
``audio/<filename>`` (5 s, 44.1 kHz mono wav). The corpus is evaluated by 5-fold
cross-validation over its official folds, so it is written as ``esc50_cuts_fold{1..5}`` with
metadata ``fold`` (int). One cut per clip (``esc50_<filename stem>``), no caption (label-only
evaluation corpus); label ``sound_event`` = ``category`` with underscores turned into spaces
(``door_wood_knock`` → ``door wood knock``).
"""

from __future__ import annotations

from toolkit.data.prepare.common import fold_corpus

NAME = "esc50"
NUM_FOLDS = 5

prepare_esc50 = fold_corpus(
    NAME, NUM_FOLDS, "meta/esc50.csv", "ESC-50", "filename", "category", fold_subdirs=False,
    doc="ESC-50 → ``esc50_cuts_fold{1..5}`` (label ``sound_event``, metadata ``fold``, no captions).",
)  # fmt: skip
