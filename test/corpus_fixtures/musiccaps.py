"""A tiny fake MusicCaps: ``musiccaps-public.csv`` (real columns) + audio in the naming forms the
prepare module accepts (full YouTube audio, ``[ytid]-[s-e]``, ``ytid_s``, a clip named ``ytid``),
one missing and one corrupt file, one row with neither caption nor aspects."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import soundfile as sf

PREPARE_OPTIONS: dict = {}

HEADER = [
    "ytid",
    "start_s",
    "end_s",
    "audioset_positive_labels",
    "aspect_list",
    "caption",
    "author_id",
    "is_balanced_subset",
    "is_audioset_eval",
]

# ytid, start, end, aspects, caption, is_audioset_eval, audio file (None = missing), seconds, sr
ROWS = [
    (
        "-0Gj8-vB1q4",
        30,
        40,
        "['low quality', 'sustained strings melody', 'soft female vocal']",
        "The low quality recording features a sustained strings melody.",
        "False",
        "-0Gj8-vB1q4.ogg",
        42.0,
        44100,
    ),  # full YouTube audio: cut [30, 40)
    (
        "0bRUkLsttto",
        10,
        20,
        "['pop', 'tinny wide hi hats']",
        "A pop song with tinny hi hats and a mellow piano.",
        "True",
        "[0bRUkLsttto]-[10-20].wav",
        3.0,
        16000,
    ),  # already cut clip (short fixture)
    (
        "_IkLUOsNHAA",
        0,
        10,
        "['classical/orchestra', 'timpani']",
        "In this piece a timpani takes a strong loud position.",
        "True",
        "_IkLUOsNHAA_0.wav",
        2.5,
        22050,
    ),
    (
        "oOiwmRV1PBk",
        0,
        10,
        "['instrumental', 'slow tempo']",
        "",
        "False",
        "oOiwmRV1PBk.flac",
        4.0,
        48000,
    ),  # clip named <ytid>; aspects only (no free caption)
    ("2unse6chkMU", 60, 70, "['rock']", "A loud rock song.", "False", None, 0, 0),  # missing
    ("3xYjQw5xVbI", 5, 15, "['jazz']", "A jazz trio.", "True", "3xYjQw5xVbI.wav", -1, 0),
    ("4aZ_UgBzxxQ", 0, 10, "[]", "", "False", "4aZ_UgBzxxQ.wav", 2.0, 16000),  # no caption
]


def _tone(seconds: float, sr: int, freq: float) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.2 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_fixture(root: Path) -> Path:
    """Write the corpus under ``root/musiccaps`` and return that folder."""
    corpus = Path(root) / "musiccaps"
    audio = corpus / "audio"
    audio.mkdir(parents=True, exist_ok=True)
    with open(corpus / "musiccaps-public.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(HEADER)
        for k, (ytid, s, e, aspects, caption, is_eval, name, seconds, sr) in enumerate(ROWS):
            writer.writerow(
                [ytid, s, e, "/m/04rlf,/m/0l14md", aspects, caption, k % 10, "False", is_eval]
            )
            if name is None:
                continue
            if seconds < 0:
                (audio / name).write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 4)
                continue
            sf.write(audio / name, _tone(seconds, sr, 220.0 + 55 * k), sr)
    return corpus
