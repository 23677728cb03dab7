"""A tiny fake UrbanSound8K in the real layout (``metadata/UrbanSound8K.csv``,
``audio/fold<k>/<slice_file_name>``).

Real: 8,732 slices of ≤ 4 s in 10 folds, wav at their Freesound source's rate/depth/channels.
Here: 0.3–0.6 s slices in folds 1, 2, 5 and 10, at 44.1 kHz/16-bit mono, 48 kHz/24-bit stereo,
22.05 kHz mono and 8 kHz mono. Listed but bad: ``100652-3-0-1.wav`` has no file (missing),
``7061-6-0-0.wav`` is truncated garbage (corrupt).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import soundfile as sf

# slice_file_name, fsID, start, end, salience, fold, classID, class, (sr, channels, subtype, s)
ROWS = [
    ("100032-3-0-0.wav", 100032, 0.0, 0.317551, 1, 5, 3, "dog_bark", (44100, 1, "PCM_16", 0.3)),
    ("100263-2-0-117.wav", 100263, 58.5, 62.5, 1, 5, 2, "children_playing",
     (48000, 2, "PCM_24", 0.5)),
    ("100648-1-0-0.wav", 100648, 4.823402, 5.471927, 2, 10, 1, "car_horn",
     (22050, 1, "PCM_16", 0.6)),
    ("101415-3-0-2.wav", 101415, 1.0, 5.0, 1, 1, 3, "dog_bark", (8000, 1, "PCM_U8", 0.4)),
    ("100652-3-0-1.wav", 100652, 0.5, 4.5, 2, 2, 3, "dog_bark", None),
    ("7061-6-0-0.wav", 7061, 0.0, 1.2, 1, 2, 6, "gun_shot", "corrupt"),
    ("102305-6-0-0.wav", 102305, 0.0, 2.61161, 1, 1, 6, "gun_shot", (44100, 1, "PCM_16", 0.5)),
]  # fmt: skip
PREPARE_OPTIONS: dict = {}


def write_fixture(root: Path) -> Path:
    """Write the fake UrbanSound8K under ``root/UrbanSound8K`` and return that corpus_dir."""
    corpus = Path(root) / "UrbanSound8K"
    (corpus / "metadata").mkdir(parents=True, exist_ok=True)
    with open(corpus / "metadata" / "UrbanSound8K.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["slice_file_name", "fsID", "start", "end", "salience", "fold", "classID",
                    "class"])  # fmt: skip
        for k, (*row, audio) in enumerate(ROWS):
            w.writerow(row)
            folder = corpus / "audio" / f"fold{row[5]}"
            folder.mkdir(parents=True, exist_ok=True)
            if audio == "corrupt":
                (folder / row[0]).write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt " + bytes(6))
            elif audio is not None:
                sr, ch, subtype, seconds = audio
                x = 0.2 * np.random.default_rng(k).standard_normal((int(sr * seconds), ch))
                sf.write(folder / row[0], x.astype(np.float32), sr, subtype=subtype)
    return corpus
