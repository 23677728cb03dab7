"""A tiny fake VGGSound: the official ``vggsound.csv`` (no header) and downloaded clips under
``audio/`` in the local namings the prepare module supports.

Real: ~200k 10 s clips (user-downloaded, usually FLAC/WAV at 16–48 kHz). Here: 2 s clips.
Listed but bad: ``--8puiAGLhs`` has no file (missing), ``zyTX_1BXKDE`` is not audio (corrupt),
``a8Z_kq2Lw0E`` has a non-numeric start (bad metadata), ``Xk9_-pQ2mZs`` is a 0.5 s partial download
(too short). ``-0BIyqJj9ZU`` (a train row) falls in the default 5 % dev share by its id hash.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import soundfile as sf

# ytid, start, label, split, relative audio path (None: none), (sr, channels, seconds) or "corrupt"
ROWS = [
    ("---g-f_I2yQ", "1", "people marching", "test", "---g-f_I2yQ_000001.flac", (16000, 1, 2.0)),
    ("--0PQM4-hqg", "30", "waterfall burbling", "train", "--0PQM4-hqg_000030.flac",
     (16000, 1, 2.0)),
    ("--56QUhyDQM", "185", "playing tennis", "train", "--56QUhyDQM_185.wav", (44100, 2, 1.5)),
    ("-0BIyqJj9ZU", "30", "bird chirping, tweeting", "train", "-0BIyqJj9ZU_30000_40000.wav",
     (16000, 1, 2.0)),
    ("BT7h7bpL0wE", "30", "chicken clucking", "train", "train/BT7h7bpL0wE_000030.flac",
     (16000, 1, 2.0)),
    ("--8puiAGLhs", "30", "car engine starting", "train", None, None),
    ("zyTX_1BXKDE", "0", "dog barking", "test", "zyTX_1BXKDE_000000.flac", "corrupt"),
    ("W3rT-9uiPqA", "12", "playing bass guitar", "train", "W3rT-9uiPqA.flac", (16000, 1, 1.25)),
    ("a8Z_kq2Lw0E", "abc", "typing on computer keyboard", "test", None, None),
    ("Xk9_-pQ2mZs", "20", "people eating crisps", "test", "Xk9_-pQ2mZs_000020.flac",
     (16000, 1, 0.5)),
]  # fmt: skip
PREPARE_OPTIONS: dict = {}


def write_fixture(root: Path) -> Path:
    """Write the fake VGGSound under ``root/vggsound`` and return that corpus_dir."""
    corpus = Path(root) / "vggsound"
    (corpus / "audio" / "train").mkdir(parents=True, exist_ok=True)
    with open(corpus / "vggsound.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        for k, (ytid, start, label, split, rel, audio) in enumerate(ROWS):
            w.writerow([ytid, start, label, split])
            if rel is None:
                continue
            path = corpus / "audio" / rel
            if audio == "corrupt":
                path.write_bytes(b"fLaC" + bytes(40))
                continue
            sr, channels, seconds = audio
            t = np.arange(int(sr * seconds)) / sr
            x = 0.3 * np.sin(2 * np.pi * (220 + 55 * k) * t)
            sf.write(path, np.stack([x] * channels, axis=1).astype(np.float32), sr)
    return corpus
