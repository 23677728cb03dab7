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

from toolkit.data.prepare.common import fold_corpus

NAME = "urbansound8k"
NUM_FOLDS = 10

prepare_urbansound8k = fold_corpus(
    NAME, NUM_FOLDS, "metadata/UrbanSound8K.csv", "UrbanSound8K", "slice_file_name", "class",
    fold_subdirs=True,
    doc="UrbanSound8K → ``urbansound8k_cuts_fold{1..10}`` (label ``sound_event``, no captions).",
)  # fmt: skip
