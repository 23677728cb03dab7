"""A tiny synthetic caption corpus for fast tests (tones; written by the tests, never committed)."""

from __future__ import annotations

import os
import subprocess
import sys
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


REPO = Path(__file__).resolve().parent.parent
DEMO_CONF = REPO / "egs" / "demo" / "conf" / "pretrain.yaml"


def write_text(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` and return the path (a config or list file for a test)."""
    path.write_text(text)
    return path


def train_tiny_run(data: dict, exp: Path, steps: int = 4) -> Path:
    """A ``steps``-step tiny contrastive run (transformer encoder, D=32, 25 frames/s) trained
    by the training CLI in a subprocess on the tone corpus ``data`` (see conftest.tone_data)."""
    over = tiny_config(
        exp,
        data["train"],
        data["spm"],
        **{"train.max_steps": steps, "train.save_every": steps, "frontend.stats_file": "null"},
    )
    cmd = [sys.executable, "-m", "toolkit.bin.train", "-c", str(DEMO_CONF), "--exp-dir", str(exp)]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd + over, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    return exp


def shared_fixture(name: str) -> Path:
    """``<shared>/fixtures/<name>``, read in place: ``$TOOLKIT_SHARED_FIXTURES/<name>``, else the
    checkout's ``../shared/fixtures/<name>``, else ``/work/shared/fixtures/<name>`` (a clean
    clone made elsewhere, as CI does); the first that exists (else the second, missing)."""
    places = [os.environ.get("TOOLKIT_SHARED_FIXTURES"), REPO.parent / "shared" / "fixtures",
              Path("/work/shared/fixtures")]  # fmt: skip
    for place in places:
        if place and (Path(place) / name).is_dir():
            return Path(place) / name
    return REPO.parent / "shared" / "fixtures" / name


def run_bench(script: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python bench/<script> args`` from the repository root on one thread; asserts exit 0
    (the output tails in the message otherwise) and returns the finished process."""
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


# A Zipformer with the real six-stack topology at widths that train in seconds on a CPU.
TINY_ZIPFORMER = dict(
    num_encoder_layers=1,
    encoder_dim=[16, 24, 16, 24, 16, 16],
    encoder_unmasked_dim=8,
    feedforward_dim=32,
    num_heads=2,
    query_head_dim=4,
    value_head_dim=4,
    pos_head_dim=2,
    pos_dim=8,
    cnn_module_kernel=5,
    subsampling_channels=[2, 4, 8],
)


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
