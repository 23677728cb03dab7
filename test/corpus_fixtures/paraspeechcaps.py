"""A tiny fake ParaSpeechCaps: the four splits as JSON-lines / CSV exports of the release's parquet
shards (``data/<split>-00000-of-00001.{jsonl,csv}``, real column names; pyarrow is not needed) and
source-corpus audio under ``voxceleb/``, ``ears/``, ``expresso/``, ``emilia/`` at their native
rates (VoxCeleb 16 kHz WAV, EARS/Expresso 48 kHz WAV, Emilia 24 kHz MP3). Includes a missing
file, a corrupt file, a row without description, a train_scaled duplicate of a train_base row and
a VoxCeleb row whose WAV exists only as FLAC."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import soundfile as sf

PREPARE_OPTIONS: dict = {}

COLUMNS = [
    "source",
    "relative_audio_path",
    "text_description",
    "transcription",
    "intrinsic_tags",
    "situational_tags",
    "basic_tags",
    "all_tags",
    "speakerid",
    "name",
    "duration",
    "gender",
    "accent",
    "pitch",
    "speaking_rate",
    "noise",
    "utterance_pitch_mean",
    "snr",
    "phonemes",
]

VOX = "voxceleb1/dev/wav/id10059/2gOUjSqfO9c/00003_voicefixer.wav"
VOX2 = "voxceleb2/dev/aac/id00012/21Uxsk56VDQ/00001_voicefixer.wav"
EARS = "p004/emo_amusement_freeform.wav"
EXPR = "audio_48khz/read/ex02/whisper/base/ex02_whisper_00123.wav"
EMIL = "EN/EN_B00030/EN_B00030_S01984/mp3/EN_B00030_S01984_W000037.mp3"

# (split, source, rel path, descriptions, intrinsic, situational, gender, accent, file spec)
# file spec: (seconds, rate, format) | None (missing) | "corrupt" | "flac" (stored as FLAC)
ROWS = [
    (
        "train_base",
        "voxceleb",
        VOX,
        [
            "A man with a deep, husky voice speaks calmly in a quiet room.",
            "In a clean recording, a husky-voiced man talks at a measured pace.",
        ],
        ["husky", "deep"],
        None,
        "male",
        "American",
        (1.0, 16000, "WAV"),
    ),
    (
        "train_base",
        "ears",
        EARS,
        ["A woman laughs and speaks in an amused tone."],
        None,
        ["amused"],
        "female",
        None,
        (0.8, 48000, "WAV"),
    ),
    (
        "train_base",
        "voxceleb",
        VOX2,
        ["A man speaks quickly with a nasal voice."],
        ["nasal"],
        None,
        "male",
        "Indian",
        "flac",
    ),
    (
        "train_base",
        "ears",
        "p005/emo_anger_sentences.wav",
        ["An angry woman shouts."],
        None,
        ["angry"],
        "female",
        None,
        None,
    ),
    (
        "train_scaled",
        "emilia",
        EMIL,
        ["A young woman speaks enthusiastically.", "An enthusiastic, bright female voice."],
        ["bright"],
        ["enthusiastic"],
        "female",
        None,
        (1.2, 24000, "MP3"),
    ),
    (
        "train_scaled",
        "voxceleb",
        VOX,
        ["Duplicate of a train_base row."],
        ["husky"],
        None,
        "male",
        None,
        None,
    ),
    (
        "dev",
        "expresso",
        EXPR,
        ["A man whispers slowly in a clean environment."],
        None,
        ["whispered"],
        "male",
        None,
        (0.9, 48000, "WAV"),
    ),
    (
        "dev",
        "expresso",
        "audio_48khz/read/ex01/happy/base/ex01_happy_00001.wav",
        [],
        None,
        ["happy"],
        "female",
        None,
        (0.5, 48000, "WAV"),
    ),
    (
        "holdout",
        "ears",
        "p101/emo_sadness_freeform.wav",
        ["A sad, breathy woman speaks softly."],
        ["breathy"],
        ["sad"],
        "female",
        "British",
        (0.7, 48000, "WAV"),
    ),
    (
        "holdout",
        "emilia",
        "EN/EN_B00001/EN_B00001_S00002/mp3/EN_B00001_S00002_W000003.mp3",
        ["A man speaks."],
        None,
        None,
        "male",
        None,
        "corrupt",
    ),
]
ROOTS = {"voxceleb": "voxceleb", "ears": "ears", "expresso": "expresso", "emilia": "emilia"}


def _record(row: tuple) -> dict:
    _, source, rel, desc, intrinsic, situational, gender, accent, _ = row
    basic = [f"{gender} voice", "moderate speed", "clean"]
    return {
        "source": source,
        "relative_audio_path": rel,
        "text_description": desc,
        "transcription": "this is what they said",
        "intrinsic_tags": intrinsic,
        "situational_tags": situational,
        "basic_tags": basic,
        "all_tags": (intrinsic or []) + (situational or []) + basic,
        "speakerid": f"{source}_spk1",
        "name": "Speaker One",
        "duration": 1.0,
        "gender": gender,
        "accent": accent,
        "pitch": "moderate pitch",
        "speaking_rate": "measured speed",
        "noise": "very clear",
        "utterance_pitch_mean": 120.5,
        "snr": 55.1,
        "phonemes": "ðɪs ɪz",
    }


def _write_audio(path: Path, spec, k: int) -> None:
    if spec is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    if spec == "corrupt":
        path.write_bytes(b"\xff\xfb\x90\x00" + b"\x00" * 40)
        return
    if spec == "flac":
        spec, path = (0.6, 16000, "FLAC"), path.with_suffix(".flac")
    seconds, sr, fmt = spec
    t = np.arange(int(seconds * sr)) / sr
    sf.write(
        path, (0.2 * np.sin(2 * np.pi * (150 + 30 * k) * t)).astype(np.float32), sr, format=fmt
    )


def write_fixture(root: Path) -> Path:
    """Write the corpus under ``root/paraspeechcaps`` and return that folder."""
    corpus = Path(root) / "paraspeechcaps"
    (corpus / "data").mkdir(parents=True, exist_ok=True)
    by_split: dict[str, list[dict]] = {}
    for k, row in enumerate(ROWS):
        by_split.setdefault(row[0], []).append(_record(row))
        _write_audio(corpus / ROOTS[row[1]] / row[2], row[8], k)
    for split, records in by_split.items():
        stem = corpus / "data" / f"{split}-00000-of-00001"
        if split == "holdout":  # a CSV export (pandas writes list cells as Python literals)
            with open(stem.with_suffix(".csv"), "w", newline="", encoding="utf-8") as f:
                writer = csv.DictWriter(f, fieldnames=COLUMNS)
                writer.writeheader()
                for r in records:
                    writer.writerow({k: "" if v is None else str(v) for k, v in r.items()})
        else:
            with open(stem.with_suffix(".jsonl"), "w", encoding="utf-8") as f:
                for r in records:
                    f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return corpus
