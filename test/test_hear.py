"""The HEAR 2021 API (toolkit.hear): attributes, shapes, dtypes and the validator's timestamp
rules (regular spacing within 1 ms, centred, ending within two hops of the audio's end)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import toolkit.hear as hear
from toolkit.inference import load_encoder


@pytest.fixture(scope="module")
def run_dir(tiny_run) -> Path:
    return tiny_run


@pytest.fixture(scope="module")
def model(run_dir) -> hear.HearModel:
    return hear.load_model(str(run_dir))


def noise(n: int, seconds: float, seed: int = 0) -> torch.Tensor:
    """White noise in [-1, 1) like the HEAR validator's test input."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, int(seconds * 16000), generator=g) * 2 - 1


def test_model_attributes(model):
    assert isinstance(model, torch.nn.Module)
    assert model.sample_rate == 16000 and isinstance(model.sample_rate, int)
    assert model.scene_embedding_size == model.timestamp_embedding_size == 32
    assert isinstance(model.scene_embedding_size, int)
    assert model.to("cpu") is model and not model.training


@pytest.mark.parametrize("seconds", [1.07, 1.98, 4.0])
def test_timestamp_embeddings(model, seconds):
    audio = noise(2, seconds)
    emb, ts = hear.get_timestamp_embeddings(audio, model)
    n = int(seconds * 16000)
    frames = model.encoder.embed(audio[1], 16000).frames  # one sound alone
    t = len(frames)
    assert emb.shape == (2, t, 32) and ts.shape == (2, t)
    assert emb.dtype == ts.dtype == torch.float32
    torch.testing.assert_close(emb[1], frames, atol=1e-5, rtol=0)
    # centred timestamps in ms: 25 frames/s, frame 0 at the click-measured offset
    offset = model.encoder.frame_offset
    assert 0.0 < offset < 0.08
    expected = 1000 * offset + 40.0 * torch.arange(t, dtype=torch.float64)
    torch.testing.assert_close(ts, expected.float().expand(2, t))
    # the validator's error rules: regular within 1 ms, ending within two hops of the end
    # (here: within one, thanks to pad_end) and not after it.
    diff = np.diff(ts.numpy(), axis=1)
    avg = diff.mean()
    assert np.abs(diff - avg).max() <= 1.0
    assert ts.min() <= 2 * avg
    assert 1000 * n / 16000 - avg <= ts.max() <= 1000 * n / 16000


def test_scene_embeddings(model):
    audio = noise(4, 2.74, seed=1)
    scene = hear.get_scene_embeddings(audio, model)
    assert scene.shape == (4, 32) and scene.dtype == torch.float32
    emb, _ = hear.get_timestamp_embeddings(audio, model)
    torch.testing.assert_close(scene, emb.mean(dim=1), atol=1e-6, rtol=0)
    alone = torch.stack([hear.get_scene_embeddings(a[None], model)[0] for a in audio])
    torch.testing.assert_close(scene, alone, atol=1e-5, rtol=0)  # batch-independent
    torch.testing.assert_close(hear.get_scene_embeddings(audio.numpy(), model), scene)
    assert not torch.allclose(scene[0], scene[1])


def test_long_audio_keeps_one_regular_grid(run_dir, model):
    windowed = hear.load_model(str(run_dir), window_seconds=1.0)  # hop 0.5 s -> 12 frames
    assert windowed.encoder.hop_seconds == 0.48
    audio = noise(2, 5.3, seed=2)
    emb, ts = hear.get_timestamp_embeddings(audio, windowed)
    ref_emb, ref_ts = hear.get_timestamp_embeddings(audio, model)  # one 30 s window
    assert emb.shape == ref_emb.shape and torch.equal(ts, ref_ts)
    diff = np.diff(ts.numpy(), axis=1)
    assert np.abs(diff - 40.0).max() < 1e-3
    assert not torch.allclose(emb, ref_emb)  # windows see less context


def test_load_model_paths(run_dir, model, monkeypatch):
    audio = noise(1, 1.5, seed=3)
    ref = hear.get_scene_embeddings(audio, model)
    from_pt = hear.load_model(str(run_dir / "model.pt"), batch_duration=5.0)
    assert from_pt.batch_duration == 5.0
    torch.testing.assert_close(hear.get_scene_embeddings(audio, from_pt), ref, atol=1e-6, rtol=0)
    monkeypatch.delenv(hear.ENV_VAR, raising=False)
    with pytest.raises(ValueError, match=hear.ENV_VAR):
        hear.load_model()
    monkeypatch.setenv(hear.ENV_VAR, str(run_dir))
    assert hear.load_model().scene_embedding_size == 32
    with pytest.raises(ValueError, match="n_sounds, n_samples"):
        hear.get_scene_embeddings(audio[0], model)
    # the same encoder as the inference API (with pad_end)
    enc = load_encoder(run_dir, pad_end=True)
    torch.testing.assert_close(enc.embed(audio[0], 16000).pooled, ref[0], atol=1e-6, rtol=0)
