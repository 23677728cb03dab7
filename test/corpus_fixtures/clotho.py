"""A tiny fake Clotho v2: ``clotho_captions_<split>.csv`` (file_name, caption_1..caption_5) and
``<split>/<file_name>`` 44.1 kHz mono WAVs whose names have spaces and odd characters; one
missing and one corrupt file."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import soundfile as sf

PREPARE_OPTIONS: dict = {}

SR = 44100
# split -> [(file_name, seconds or None = missing, -1 = corrupt)]
FILES = {
    "development": [
        ("Distorted AM Radio noise.wav", 1.0),
        ("01 A pug struggles to breathe 1_14_2008.wav", 1.2),
        ("Santa Motor (Ambience) & Snow-Crunch.wav", None),
    ],
    "validation": [("Café ambiance, Brüssel #2.wav", 0.8), ("rain_on_roof.wav", -1)],
    "evaluation": [("birds-chirping.wav", 1.0)],
}
CAPTIONS = [
    "A radio is tuned between stations producing distorted noise.",
    "Static crackles while a radio dial is turned slowly.",
    "An  old radio   hisses and buzzes loudly.",
    "Someone scans through radio frequencies full of noise.",
    "Loud static noise comes from a radio.",
]


def write_fixture(root: Path) -> Path:
    """Write the corpus under ``root/clotho`` and return that folder."""
    corpus = Path(root) / "clotho"
    for k, (split, files) in enumerate(FILES.items()):
        (corpus / split).mkdir(parents=True, exist_ok=True)
        with open(corpus / f"clotho_captions_{split}.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["file_name"] + [f"caption_{i}" for i in range(1, 6)])
            for j, (name, seconds) in enumerate(files):
                caps = [f"{c} ({split} {j})" for c in CAPTIONS]
                if name == "birds-chirping.wav":
                    caps[3] = ""  # an empty caption cell is dropped
                writer.writerow([name, *caps])
                if seconds is None:
                    continue
                if seconds < 0:
                    (corpus / split / name).write_bytes(b"not a wav file at all")
                    continue
                t = np.arange(int(seconds * SR)) / SR
                tone = 0.1 * np.sin(2 * np.pi * (300 + 100 * k + 40 * j) * t)
                sf.write(corpus / split / name, tone.astype(np.float32), SR)
    return corpus
