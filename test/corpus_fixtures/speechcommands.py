"""A tiny fake Speech Commands v0.02 in the real layout: ``<word>/<hash>_nohash_<n>.wav``
(16 kHz mono 16-bit), ``validation_list.txt``, ``testing_list.txt`` and
``_background_noise_/`` (two noise files and its README)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

SR = 16000
PREPARE_OPTIONS: dict = {}

# word/file -> (split, seconds)
CLIPS = {
    "yes/0a7c2a8d_nohash_0.wav": ("train", 1.0),
    "yes/0a7c2a8d_nohash_1.wav": ("train", 0.6),
    "yes/1b4c9b89_nohash_0.wav": ("dev", 1.0),
    "no/0a7c2a8d_nohash_0.wav": ("train", 0.8),
    "no/c1d39ce8_nohash_2.wav": ("test", 1.0),
    "up/3b8b1dd9_nohash_0.wav": ("test", 0.5),
    "marvin/0ab3b47d_nohash_0.wav": ("train", 0.9),
    "marvin/1b4c9b89_nohash_1.wav": ("dev", 1.0),
    "sheila/fc2411fe_nohash_0.wav": ("test", 0.7),
}
MISSING = "left/fffcabd1_nohash_0.wav"  # in testing_list.txt, no file
CORRUPT = "right/bb05582b_nohash_3.wav"  # in validation_list.txt, not a wav
BACKGROUND = {"white_noise.wav": 10.0, "running_tap.wav": 4.3}
# silence windows (1 s) with the default 0.1 / 0.1 fractions: white_noise 10 s → 8/1/1,
# running_tap 4 s → 4/0/0
SILENCE_COUNTS = {"train": 12, "dev": 1, "test": 1}


def write_fixture(root: Path) -> Path:
    """Write the fixture under ``root/speech_commands_v0.02`` and return that corpus_dir."""
    corpus = Path(root) / "speech_commands_v0.02"
    rng = np.random.default_rng(0)
    lists: dict[str, list[str]] = {"dev": [CORRUPT], "test": [MISSING]}
    for k, (rel, (split, seconds)) in enumerate(CLIPS.items()):
        path = corpus / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        t = np.arange(int(SR * seconds)) / SR
        x = 0.3 * np.sin(2 * np.pi * (200 + 30 * k) * t) * np.hanning(t.size)
        sf.write(path, x, SR, subtype="PCM_16")
        if split != "train":
            lists[split].append(rel)
    (corpus / CORRUPT).parent.mkdir(parents=True, exist_ok=True)
    (corpus / CORRUPT).write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk")
    (corpus / "validation_list.txt").write_text("".join(f"{r}\n" for r in sorted(lists["dev"])))
    (corpus / "testing_list.txt").write_text("".join(f"{r}\n" for r in sorted(lists["test"])))
    bg = corpus / "_background_noise_"
    bg.mkdir(parents=True, exist_ok=True)
    for name, seconds in BACKGROUND.items():
        sf.write(bg / name, 0.05 * rng.standard_normal(int(SR * seconds)), SR, subtype="PCM_16")
    (bg / "README.md").write_text("Background noise recordings.\n")
    return corpus
