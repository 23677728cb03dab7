"""A tiny fake FSD50K in the real layout (ground-truth csvs, dev/eval audio folders).

Real: 51,197 clips of 0.3–30 s, 44.1 kHz mono 16-bit PCM wav. Here: 0.5–1.0 s clips at 44.1 kHz.
Listed but bad: dev clip 16401 has no wav (missing), eval clip 175151 is not audio (corrupt),
dev clip 16405 has an empty ``labels`` cell (bad metadata).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 44100
GUITAR = (
    "Electric_guitar,Guitar,Plucked_string_instrument,Musical_instrument,Music",
    "/m/02sgy,/m/0342h,/m/0fx80y,/m/04szw,/m/04rlf",
)
BARK = ("Bark,Dog,Domestic_animals_and_pets,Animal", "/m/05tny_,/m/0bt9lr,/m/068hy,/m/0jbk")
SPEECH = ("Male_speech_and_man_speaking,Speech,Human_voice", "/m/05zppz,/m/09x0r,/m/09l8g")
KNOCK = ("Knock,Door,Domestic_sounds_and_home_sounds", "/m/07r4wb8,/m/02dgv,/t/dd00071")
# fname, (labels, mids), split (None for eval.csv), seconds of audio (None: no file, 0: corrupt)
DEV = [
    ("64760", GUITAR, "train", 1.0),
    ("16399", BARK, "train", 0.5),
    ("16401", SPEECH, "train", None),
    ("16405", ("", ""), "train", 0.5),
    ("102863", KNOCK, "val", 0.75),
    ("21914", SPEECH, "val", 0.5),
]
EVAL = [("37199", GUITAR, None, 0.6), ("175151", BARK, None, 0), ("8101", KNOCK, None, 0.9)]
PREPARE_OPTIONS: dict = {}


def _write_audio(path: Path, seconds: float | None, seed: int) -> None:
    if seconds is None:
        return
    if seconds == 0:
        path.write_bytes(b"RIFF\x24\x00\x00\x00WAVEjunk" + bytes(64))
        return
    rng = np.random.default_rng(seed)
    t = np.arange(int(SR * seconds)) / SR
    x = 0.2 * np.sin(2 * np.pi * rng.uniform(200, 2000) * t) + 0.01 * rng.standard_normal(t.size)
    sf.write(path, x.astype(np.float32), SR, subtype="PCM_16")


def write_fixture(root: Path) -> Path:
    """Write the fake FSD50K under ``root/FSD50K`` and return that corpus_dir."""
    corpus = Path(root) / "FSD50K"
    gt = corpus / "FSD50K.ground_truth"
    for d in (gt, corpus / "FSD50K.dev_audio", corpus / "FSD50K.eval_audio"):
        d.mkdir(parents=True, exist_ok=True)
    for name, rows, audio in (
        ("dev", DEV, "FSD50K.dev_audio"),
        ("eval", EVAL, "FSD50K.eval_audio"),
    ):
        with open(gt / f"{name}.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["fname", "labels", "mids"] + (["split"] if name == "dev" else []))
            for k, (fname, (labels, mids), split, seconds) in enumerate(rows):
                w.writerow([fname, labels, mids] + ([split] if split else []))
                _write_audio(corpus / audio / f"{fname}.wav", seconds, k)
    return corpus
