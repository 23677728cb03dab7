"""A tiny fake NSynth (json/wav release): ``nsynth-{train,valid,test}/examples.json`` and
``nsynth-<split>/audio/<note_str>.wav``.

Real: 305,979 notes of 4 s, 16 kHz mono 16-bit wav. Here: 1 s notes. Listed but bad:
``guitar_acoustic_010-066-100`` (train) has no wav (missing), ``brass_acoustic_046-060-075``
(valid) is not audio (corrupt), ``organ_electronic_007-055-100`` (test) has no ``pitch``
(bad metadata).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 16000
SECONDS = 1.0
FAMILIES = ("bass", "brass", "flute", "guitar", "keyboard", "mallet", "organ", "reed", "string",
            "synth_lead", "vocal")  # fmt: skip
SOURCES = ("acoustic", "electronic", "synthetic")
QUALITIES = ("bright", "dark", "distortion", "fast_decay", "long_release", "multiphonic",
             "nonlinear_env", "percussive", "reverb", "tempo-synced")  # fmt: skip
# split folder, family, source, instrument number, pitch, velocity, qualities, audio state
NOTES = [
    ("train", "bass", "synthetic", 33, 22, 50, ["dark"], "ok"),
    ("train", "synth_lead", "synthetic", 0, 60, 25, ["bright", "fast_decay"], "ok"),
    ("train", "guitar", "acoustic", 10, 66, 100, [], "missing"),
    ("valid", "keyboard", "electronic", 1, 21, 127, [], "ok"),
    ("valid", "brass", "acoustic", 46, 60, 75, ["reverb"], "corrupt"),
    ("test", "vocal", "acoustic", 3, 69, 50, ["tempo-synced", "long_release"], "ok"),
    ("test", "organ", "electronic", 7, 55, 100, [], "no_pitch"),
]
PREPARE_OPTIONS: dict = {}


def note_str(family: str, source: str, number: int, pitch: int, velocity: int) -> str:
    return f"{family}_{source}_{number:03d}-{pitch:03d}-{velocity:03d}"


def write_fixture(root: Path) -> Path:
    """Write the fake NSynth under ``root/nsynth`` and return that corpus_dir."""
    corpus = Path(root) / "nsynth"
    examples: dict[str, dict] = {"train": {}, "valid": {}, "test": {}}
    for k, (split, family, source, number, pitch, velocity, quals, state) in enumerate(NOTES):
        audio = corpus / f"nsynth-{split}" / "audio"
        audio.mkdir(parents=True, exist_ok=True)
        name = note_str(family, source, number, pitch, velocity)
        meta = {
            "note": 1000 + k, "sample_rate": SR, "pitch": pitch,
            "instrument_source": SOURCES.index(source), "instrument_family_str": family,
            "instrument_str": f"{family}_{source}_{number:03d}", "note_str": name,
            "qualities_str": quals, "instrument_source_str": source, "velocity": velocity,
            "instrument_family": FAMILIES.index(family), "instrument": 100 + k,
            "qualities": [int(q in quals) for q in QUALITIES],
        }  # fmt: skip
        if state == "no_pitch":
            del meta["pitch"]
        examples[split][name] = meta
        if state == "corrupt":
            (audio / f"{name}.wav").write_bytes(b"RIFF" + bytes(30))
        elif state != "missing":
            t = np.arange(int(SR * SECONDS)) / SR
            freq = 440.0 * 2 ** ((meta.get("pitch", 60) - 69) / 12)
            x = velocity / 127 * 0.5 * np.sin(2 * np.pi * freq * t) * np.exp(-3 * t)
            sf.write(audio / f"{name}.wav", x.astype(np.float32), SR, subtype="PCM_16")
    for split, ex in examples.items():
        (corpus / f"nsynth-{split}" / "examples.json").write_text(json.dumps(ex, indent=4))
    return corpus
