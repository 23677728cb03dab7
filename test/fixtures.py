"""A tiny synthetic caption corpus for fast tests (tones; written by the tests, never committed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
from lhotse import CutSet, MonoCut, Recording, SupervisionSegment

PITCHES = {"low": 220.0, "middle": 440.0, "high": 1320.0}
PATTERNS = {"steady": 1, "beeping": 4}


def tone(
    rng: np.random.Generator, pitch: str, pattern: str, dur: float, sr: int = 16000
) -> np.ndarray:
    t = np.arange(int(dur * sr)) / sr
    x = 0.3 * np.sin(2 * np.pi * PITCHES[pitch] * t)
    if pattern == "beeping":
        x *= (np.sin(2 * np.pi * 3.0 * t) > 0).astype(np.float32)
    return (x + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


def make_tone_corpus(
    root: Path, n: int, seed: int = 0, sr: int = 16000, prefix: str = "c"
) -> CutSet:
    """``n`` clips of 0.5–2 s: pitch × pattern tones with two captions and two label tasks."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    cuts = []
    for i in range(n):
        pitch = list(PITCHES)[i % 3]
        pattern = list(PATTERNS)[(i // 3) % 2]
        dur = float(rng.uniform(0.5, 2.0))
        path = root / f"{prefix}{i:04d}.wav"
        sf.write(path, tone(rng, pitch, pattern, dur, sr), sr)
        rec = Recording.from_file(path)
        sup = SupervisionSegment(
            id=rec.id,
            recording_id=rec.id,
            start=0.0,
            duration=rec.duration,
            text=f"a {pitch} {pattern} tone",
            custom={
                "caption": [f"a {pitch} {pattern} tone", f"{pattern}, {pitch} pitch"],
                "caption_style": ["short", "tags"],
                "domain": "sound",
                "source": "tones",
                "sound_pitch": pitch,
                "sound_pattern": pattern,
            },
        )
        cuts.append(MonoCut(rec.id, 0.0, rec.duration, 0, recording=rec, supervisions=[sup]))
    return CutSet.from_cuts(cuts)


def tiny_config(tmp: Path, train: Path, spm: Path, **overrides) -> list[str]:
    """Overrides for egs/demo/conf-like tiny CPU training on the tone corpus."""
    items = {
        "data.train": str(train),
        "tokenizer.model": str(spm),
        "data.num_workers": 0,
        "data.max_duration": 8.0,
        "train.max_steps": 6,
        "train.log_every": 1,
        "train.save_every": 3,
        "train.progress": False,
        "encoder.dim": 32,
        "encoder.num_layers": 1,
        "encoder.num_heads": 2,
        "encoder.ff_dim": 64,
        "encoder.dropout": 0.0,
        "encoder.subsampling_channels": 8,
        "objective.embed_dim": 16,
        "objective.text_encoder.dim": 32,
        "objective.text_encoder.num_layers": 1,
        "objective.text_encoder.num_heads": 2,
        "objective.text_encoder.ff_dim": 64,
        "objective.text_encoder.dropout": 0.0,
        "seed": 3,
    }
    items.update(overrides)
    return [f"{k}={v}" for k, v in items.items()]
