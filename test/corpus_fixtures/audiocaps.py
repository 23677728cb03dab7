"""A tiny fake AudioCaps in its real layout (the GitHub CSVs + locally downloaded clips).

Layout written under ``root/audiocaps``::

    train.csv, val.csv, test.csv          audiocap_id,youtube_id,start_time,caption
    audio/train/--0w1YA1Hm4_30.flac       aac-datasets naming <youtube_id>_<start_time>
    audio/train/corruptclip_0.wav         corrupt
    audio/val/vfY_TJq7n_U.wav             plain <youtube_id> naming, 5 captions (rows interleaved)
    audio/val/uYT5gxnyMWM_50.flac         5 captions
    audio/7fmOlUlwoNg_20.wav              test clip directly under audio/ (no split folder)
    audio/test/6BJ455B1aAs_0.wav          0.2 s: too short

Train clip ``zzMissing01`` has no audio (missing); one test row has no start (bad_metadata).
"""

from __future__ import annotations

import csv
from pathlib import Path

import soundfile as sf

from corpus_fixtures.signals import tone

PREPARE_OPTIONS: dict = {}

TRAIN = [
    (91139, "--0w1YA1Hm4", 30, "A woman talks nearby as water pours"),
    (91140, "zzMissing01", 10, "A dog barks"),  # no audio: missing
    (91141, "corruptclip", 0, "Wind blows"),  # corrupt file: unreadable
]
VAL_A = [
    "Rustling occurs, ducks quack and water splashes",
    "Ducks quack as water splashes",
    "Water splashes while ducks quack and people talk",
    "A duck call is blown while water splashes",
    "Ducks quacking and people speaking near water",
]
VAL_B = [
    "A young female speaks, followed by spraying and a female screaming",
    "A girl speaks followed by a scream",
    "Spraying and a woman screams",
    "A woman speaks and then screams",
    "Spraying then screaming",
]
VAL = [
    row
    for k in range(5)
    for row in (
        (97151 + k, "vfY_TJq7n_U", 130, VAL_A[k]),
        (107890 + k, "uYT5gxnyMWM", 50, VAL_B[k]),
    )
]
TEST = [(103549 + k, "7fmOlUlwoNg", 20, f"constant rattling noise, take {k}") for k in range(5)]
TEST += [(103548, "6BJ455B1aAs", 0, "a rocket flies by"), (103550, "GOD8Bt5LfDE", "", "humming")]
# (relative path, sample rate, channels, seconds)
AUDIO = [
    ("audio/train/--0w1YA1Hm4_30.flac", 32000, 1, 2.0),
    ("audio/val/vfY_TJq7n_U.wav", 16000, 1, 1.0),
    ("audio/val/uYT5gxnyMWM_50.flac", 44100, 2, 1.5),
    ("audio/7fmOlUlwoNg_20.wav", 16000, 1, 2.0),
    ("audio/test/6BJ455B1aAs_0.wav", 16000, 1, 0.2),
]


def write_fixture(root: Path) -> Path:
    """Write the fake corpus under ``root`` and return its corpus_dir."""
    corpus = Path(root) / "audiocaps"
    corpus.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train.csv", TRAIN), ("val.csv", VAL), ("test.csv", TEST)):
        with open(corpus / name, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["audiocap_id", "youtube_id", "start_time", "caption"])
            writer.writerows(rows)
    for k, (rel, sr, ch, sec) in enumerate(AUDIO):
        path = corpus / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, tone(sec, sr, ch, 330.0 + 30 * k), sr)
    (corpus / "audio" / "train" / "corruptclip_0.wav").write_bytes(b"RIFF" + b"\x01" * 40)
    return corpus
