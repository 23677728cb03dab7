"""A tiny fake ESC-50 in the real layout (``meta/esc50.csv``, ``audio/<filename>``).

Real: 2,000 clips of 5 s, 44.1 kHz mono 16-bit wav, 40 per class, 5 folds. Here: 0.5 s clips at
44.1 kHz, one or two per fold. Listed but bad: ``3-104632-A-12.wav`` has no file (missing),
``4-181286-A-10.wav`` is not audio (corrupt).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 44100
SECONDS = 0.5
# filename, fold, target, category, esc10, src_file, take, audio state ("ok"/"missing"/"corrupt")
ROWS = [
    ("1-100032-A-0.wav", 1, 0, "dog", True, "100032", "A", "ok"),
    ("1-100038-A-14.wav", 1, 14, "chirping_birds", False, "100038", "A", "ok"),
    ("2-102414-A-17.wav", 2, 17, "pouring_water", False, "102414", "A", "ok"),
    ("3-104632-A-12.wav", 3, 12, "crackling_fire", True, "104632", "A", "missing"),
    ("3-141240-B-44.wav", 3, 44, "engine", False, "141240", "B", "ok"),
    ("4-181286-A-10.wav", 4, 10, "rain", True, "181286", "A", "corrupt"),
    ("4-185575-A-30.wav", 4, 30, "door_wood_knock", False, "185575", "A", "ok"),
    ("5-9032-A-0.wav", 5, 0, "dog", True, "9032", "A", "ok"),
]
PREPARE_OPTIONS: dict = {}


def write_fixture(root: Path) -> Path:
    """Write the fake ESC-50 under ``root/ESC-50-master`` and return that corpus_dir."""
    corpus = Path(root) / "ESC-50-master"
    (corpus / "meta").mkdir(parents=True, exist_ok=True)
    (corpus / "audio").mkdir(parents=True, exist_ok=True)
    with open(corpus / "meta" / "esc50.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["filename", "fold", "target", "category", "esc10", "src_file", "take"])
        for k, (*row, state) in enumerate(ROWS):
            w.writerow(row)
            path = corpus / "audio" / row[0]
            if state == "corrupt":
                path.write_bytes(b"not a wav file" * 8)
            elif state == "ok":
                rng = np.random.default_rng(k)
                x = 0.1 * rng.standard_normal(int(SR * SECONDS))
                sf.write(path, x.astype(np.float32), SR, subtype="PCM_16")
    return corpus
