"""Embedding export: load_encoder / Encoder (batch invariance, resampling, windowing, errors)
and the ``toolkit.bin.extract`` CLI."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from fixtures import TINY_ZIPFORMER
from lhotse import CutSet

from toolkit.audio import AudioLoadError, Window, resample, window_plan
from toolkit.bin.extract import main as extract_main
from toolkit.config import ConfigError, load_config
from toolkit.inference import (
    Encoder,
    load_embeddings,
    load_encoder,
)
from toolkit.layers import masked_mean
from toolkit.model import build_tokenizer
from toolkit.registry import ENCODERS, FRONTENDS
from toolkit.runs import open_run

ROOT = Path(__file__).resolve().parent.parent
ATOL = 1e-5


@pytest.fixture(scope="module")
def run_dir(tiny_run) -> Path:
    return tiny_run


@pytest.fixture(scope="module")
def enc(run_dir) -> Encoder:
    return load_encoder(run_dir)


def wavs(tone_data, split: str = "dev") -> list[Path]:
    return sorted((tone_data["root"] / "audio").glob(f"{split}*.wav"))


def tones(sr: int, dur: float = 1.5) -> np.ndarray:
    """Two tones under a smooth envelope, synthesised directly at ``sr`` (no resampler)."""
    t = np.arange(int(round(dur * sr))) / sr
    env = 0.5 - 0.5 * np.cos(2 * np.pi * 1.5 * t)
    return (env * (0.3 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 1320 * t))).astype(
        np.float32
    )


def assert_same(a, b, atol: float = ATOL) -> None:
    assert a.frames.shape == b.frames.shape
    torch.testing.assert_close(a.frames, b.frames, atol=atol, rtol=0)
    torch.testing.assert_close(a.pooled, b.pooled, atol=atol, rtol=0)
    assert torch.equal(a.times, b.times)


def test_attributes_and_equality_with_evaluation(run_dir, enc, tone_data):
    assert (enc.sampling_rate, enc.output_dim, enc.frame_rate) == (16000, 32, 25.0)
    assert enc.window_seconds == 30.0 and enc.hop_seconds == 29.0  # eval.max_clip_duration
    assert 0 < enc.min_seconds <= 0.2 and not enc.training
    assert 0.0 < enc.frame_offset < 0.08  # click-measured centre of frame 0
    # the reference: the stage-5 evaluation's model and pooling (toolkit.bin.evaluate)
    cfg = load_config(run_dir / "config.yaml")
    model = open_run(run_dir).model(build_tokenizer(cfg))
    for path in wavs(tone_data)[:3]:
        audio, sr = sf.read(path, dtype="float32")
        e = enc.embed(audio, sr)
        with torch.no_grad():
            hidden, lens = model.encode(torch.from_numpy(audio)[None], torch.tensor([len(audio)]))
        assert e.frames.shape == (int(lens[0]), 32)
        torch.testing.assert_close(e.frames, hidden[0, : int(lens[0])], atol=ATOL, rtol=0)
        torch.testing.assert_close(e.pooled, masked_mean(hidden, lens)[0], atol=ATOL, rtol=0)
        expected = enc.frame_offset + torch.arange(len(e.frames)).double() / 25.0
        assert torch.allclose(e.times, expected)
        assert e.duration == pytest.approx(len(audio) / 16000)


def test_same_vectors_whatever_batch_size_or_neighbours(enc, tone_data, monkeypatch):
    files = wavs(tone_data)
    sizes: list[int] = []
    real = enc.encode_batch

    def spy(audio, lens):
        sizes.append(len(lens))
        return real(audio, lens)

    monkeypatch.setattr(enc, "encode_batch", spy)
    one = enc.embed_files(files[:3], batch_duration=1e-3, progress=False)
    assert sizes == [1, 1, 1]
    sizes.clear()
    three = enc.embed_files(files[:3], batch_duration=1000, progress=False)
    assert sizes == [3]
    sizes.clear()
    mixed = enc.embed_files(files[5:] + files[:3][::-1], batch_duration=1000, progress=False)
    assert sizes == [len(files) - 2]
    by_id = {e.id: e for e in mixed}
    worst = 0.0
    for a, b in zip(one, three):
        assert a.id == b.id
        assert_same(a, b)
        assert_same(a, by_id[a.id])
        worst = max(worst, float((a.frames - by_id[a.id].frames).abs().max()))
    print(f"max |frame difference| across batchings: {worst:.2e}")


ENCODER_BLOCKS = {
    "transformer": dict(dim=16, num_layers=1, num_heads=2, ff_dim=32, subsampling_channels=4),
    "cnn": dict(channels=[4, 8, 8], dropout=0.0),
    "patch_transformer": dict(dim=16, num_layers=1, num_heads=2, ff_dim=32, dropout=0.0),
    "zipformer": {
        **TINY_ZIPFORMER,
        "size": "S",
        "cnn_module_kernel": [7, 7, 5, 5, 5, 7],
        "subsampling_channels": [4, 8, 8],
        "dropout": 0.0,
    },
}


@pytest.mark.parametrize("name", sorted(ENCODER_BLOCKS))
def test_every_encoder_is_padding_invariant(name):
    """Batched encoding is only used because every built-in encoder passes this."""
    torch.manual_seed(0)
    fe = FRONTENDS.build({"name": "fbank", "num_mel_bins": 32}, key="frontend")
    mod = ENCODERS.build({"name": name, **ENCODER_BLOCKS[name]}, key="encoder", input_dim=32)
    enc = Encoder(fe, mod, 16000, window_seconds=2.0, hop_seconds=1.5)
    clips = [0.1 * torch.randn(n) for n in (11000, 40000, 23000)]  # the second is windowed
    alone = [enc.embed(c, 16000) for c in clips]
    together = enc.embed_many(clips, 16000, batch_duration=100)
    for a, b in zip(alone, together):
        assert_same(a, b)
    assert enc.frame_rate > 0 and len(alone[1].frames) >= 2.5 * enc.frame_rate - 8


def test_resampler_matches_analytic_signal():
    x = torch.from_numpy(tones(44100))
    y = resample(x, 44100, 16000, backend="lhotse")
    ref = torch.from_numpy(tones(16000))
    assert y.shape == ref.shape
    inner = slice(200, -200)  # away from the zero-padded edges
    err = float((y[inner] - ref[inner]).abs().max())
    assert err < 5e-4, err  # measured 1e-4


def test_torchaudio_and_lhotse_resamplers_agree():
    pytest.importorskip("torchaudio", reason="torchaudio (optional; GPU machines) is not installed")
    x = torch.from_numpy(tones(44100))
    a = resample(x, 44100, 16000, backend="torchaudio")
    b = resample(x, 44100, 16000, backend="lhotse")
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_stereo_44k_copy_gives_close_embeddings(enc, tmp_path):
    mono = tones(16000)
    y = tones(44100)
    stereo = np.stack([0.8 * y, 1.2 * y])  # (C, S); the channel mean is y
    a = enc.embed(mono, 16000)
    b = enc.embed(stereo, 44100)
    assert a.frames.shape == b.frames.shape
    # Not exact: the 44.1k -> 16k resampled signal differs from the one synthesised at 16 kHz
    # by up to 1e-4 inside the clip and 7e-4 at its ends (windowed-sinc kernel of finite width,
    # band edge at 0.99 * 8 kHz, zero padding beyond the ends). Measured: max |frame diff|
    # 1.5e-4 (frames are O(1)), pooled cosine 1.000000; the bounds leave a 10x margin.
    diff = float((a.frames - b.frames).abs().max())
    cos = torch.nn.functional.cosine_similarity(a.pooled, b.pooled, dim=0)
    print(f"stereo 44.1k vs mono 16k: max |frame diff| {diff:.2e}, pooled cosine {cos:.6f}")
    assert diff < 2e-3 and cos > 0.99999
    # the same audio from a file (soundfile reads (S, C); lhotse gives (C, S))
    sf.write(tmp_path / "st.wav", stereo.T, 44100, subtype="FLOAT")
    assert_same(enc.embed_files([tmp_path / "st.wav"], progress=False)[0], b, atol=1e-6)
    sf.write(tmp_path / "st.flac", stereo.T, 44100)  # 16-bit: close, not equal
    c = enc.embed_files([tmp_path / "st.flac"], progress=False)[0]
    assert float((c.frames - b.frames).abs().max()) < 0.05


def test_window_plan_rule():
    ws = window_plan(16000 * 5, 16000, 25.0, 1.0, 0.6)
    assert [w.start for w in ws] == [k * 9600 for k in range(8)]
    assert ws[-1].end == 80000 and all(w.end - w.start == 16000 for w in ws[:-1])
    # overlap 0.4 s = 10 frames is split in the middle: 5 frames from each side
    assert [(w.first, w.keep_from, w.keep_to) for w in ws[:2]] == [(0, 0, 20), (15, 20, 35)]
    assert ws[-1].keep_to is None
    assert window_plan(16000, 16000, 25.0, 1.0, 0.6) == [Window(0, 16000, 0, 0, None)]
    with pytest.raises(ValueError, match="must not exceed"):
        window_plan(50000, 16000, 25.0, 1.0, 1.5)


def test_long_audio_windowing(run_dir, enc):
    win = load_encoder(run_dir, window_seconds=1.0, hop_seconds=0.6)
    x = torch.from_numpy(tones(16000, 3.3)) + 0.01 * torch.randn(52800)
    e, whole = win.embed(x, 16000), enc.embed(x, 16000)
    # one regular grid: as many frames as the unwindowed encoding, at the same times
    assert len(e.frames) == len(whole.frames) == 81
    assert torch.equal(e.times, whole.times)
    assert torch.allclose(e.times.diff(), torch.full((80,), 0.04, dtype=torch.float64))
    torch.testing.assert_close(e.pooled, e.frames.mean(0))
    # each frame equals the frame of the window it was taken from, encoded alone
    taken = 0
    for w in window_plan(len(x), 16000, 25.0, 1.0, 0.6):
        h, n = win.encode_batch(x[None, w.start : w.end], torch.tensor([w.end - w.start]))
        g = w.first + torch.arange(int(n[0]))
        keep = (g >= w.keep_from) & (g < (w.keep_to if w.keep_to is not None else 10**9))
        torch.testing.assert_close(e.frames[g[keep]], h[0, : int(n[0])][keep], atol=ATOL, rtol=0)
        taken += int(keep.sum())
    assert taken == 81
    # no overlap (hop = window): windows of 1, 1, 1, 0.3 s give 23, 23, 23, 6 frames; the
    # frames each window loses at its end leave gaps in the grid
    flat = load_encoder(run_dir, window_seconds=1.0, hop_seconds=1.0).embed(x, 16000)
    counts = [23, 23, 23, 6]
    grid = torch.cat([k * 25 + torch.arange(n) for k, n in enumerate(counts)])
    assert len(flat.frames) == sum(counts) == 75
    assert torch.allclose(flat.times, enc.frame_offset + grid.double() / 25)
    # shorter than one frame's worth of audio: zero-padded, one frame inside the clip
    tiny = enc.embed(x[:800], 16000)
    assert tiny.frames.shape == (1, 32)
    assert float(tiny.times[0]) == pytest.approx(min(enc.frame_offset, 0.05))


@pytest.mark.parametrize("seconds", [1.07, 1.98, 3.3])
def test_pad_end_reaches_the_clip_end(run_dir, enc, seconds):
    pad = load_encoder(run_dir, pad_end=True, window_seconds=2.0)
    x = torch.from_numpy(tones(16000, seconds))
    e, plain = pad.embed(x, 16000), enc.embed(x, 16000)
    # without padding the last ~0.04-0.1 s has no frame centre; with it, one within a hop
    assert seconds - 0.04 <= float(e.times[-1]) <= seconds
    assert len(e.frames) >= len(plain.frames) + 1
    assert torch.allclose(e.times, pad.frame_offset + torch.arange(len(e.frames)).double() / 25)


def test_a_click_is_seen_most_by_the_frame_whose_time_is_nearest(enc):
    """Timestamp centring: clicks at several times, each in silence; the frame that changes
    most has its timestamp within half a frame period of the click."""
    n = 32000
    silence = enc.embed(torch.zeros(n), 16000).frames
    for t in (0.3131, 0.5, 0.777, 1.2345):
        x = torch.zeros(n)
        x[int(t * 16000)] = 0.5
        e = enc.embed(x, 16000)
        best = int((e.frames - silence).norm(dim=-1).argmax())
        assert abs(float(e.times[best]) - t) <= 0.5 / enc.frame_rate + 1e-6, (t, e.times[best])


@pytest.mark.parametrize("extra", [0.0, -0.05])
def test_a_clip_of_one_window_is_encoded_whole_with_pad_end(run_dir, extra):
    """pad_end does not split a clip between (window - padding) and the window length: windows
    are planned on the clip, the padding joins the last one."""
    pad = load_encoder(run_dir, pad_end=True, window_seconds=2.0)
    x = torch.from_numpy(tones(16000, 2.0 + extra))
    e = pad.embed(x, 16000)
    tail = int(round((pad.frame_offset + 2 / pad.frame_rate) * 16000))
    padded = torch.nn.functional.pad(x, (0, tail))
    h, n = pad.encode_batch(padded[None], torch.tensor([len(padded)]))
    whole = h[0, : int(n[0])][: len(e.frames)]
    torch.testing.assert_close(e.frames, whole, atol=ATOL, rtol=0)


def test_unreadable_files(enc, tone_data, tmp_path):
    good = wavs(tone_data)[:2]
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"not audio at all" * 10)
    missing = tmp_path / "missing.flac"
    with pytest.raises(AudioLoadError, match=r"broken\.wav"):
        enc.embed_files([good[0], bad], progress=False)
    with pytest.raises(AudioLoadError, match=r"missing\.flac': no such file"):
        enc.embed_files([missing], progress=False)
    res = enc.embed_files([good[0], bad, missing, good[1]], progress=False, on_error="skip")
    assert res.ids == [str(good[0]), str(good[1])]
    assert set(res.failed) == {str(bad), str(missing)} and res.pooled().shape == (2, 32)
    with pytest.raises(ValueError, match="no samples"):
        enc.embed(np.zeros(0, np.float32), 16000)
    with pytest.raises(ValueError, match="transpose"):
        enc.embed(np.zeros((16000, 2), np.float32), 16000)


def test_cuts_and_checkpoint_paths(run_dir, enc, tone_data, tmp_path):
    cuts = CutSet.from_file(tone_data["dev"])
    by_cut = enc.embed_cuts(cuts, progress=False)
    paths = [c.recording.sources[0].source for c in cuts]
    by_file = enc.embed_files(paths, progress=False, num_workers=2)  # read in 2 threads
    assert by_cut.ids == [c.id for c in cuts]
    for a, b in zip(by_cut, by_file):
        assert_same(a, b, atol=1e-6)
    x = torch.from_numpy(tones(16000))
    ref = enc.embed(x, 16000)
    # a checkpoint file inside the run, and a lone model.pt (its stored config is used)
    ckpt = load_encoder(run_dir / "checkpoints" / "checkpoint-4.pt")
    assert_same(ckpt.embed(x, 16000), ref, atol=1e-6)
    lone = tmp_path / "lone"
    lone.mkdir()
    shutil.copy(run_dir / "model.pt", lone / "model.pt")
    assert_same(load_encoder(lone / "model.pt").embed(x, 16000), ref, atol=1e-6)
    with pytest.raises(ConfigError, match="not a run directory"):
        load_encoder(tmp_path)


def test_relative_stats_file_is_found_above_the_run(run_dir, enc, tmp_path, monkeypatch):
    run = tmp_path / "corpus" / "exp" / "x"  # a recipe layout: corpus/{data,exp/x}
    run.mkdir(parents=True)
    shutil.copy(run_dir / "model.pt", run / "model.pt")
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    cfg["frontend"]["stats_file"] = "data/fbank_stats.pt"
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="stats_file: data/fbank_stats.pt .*not found"):
        load_encoder(run)
    (tmp_path / "corpus" / "data").mkdir()
    stats = {"mean": torch.zeros(80), "std": torch.ones(80)}  # identity normalisation
    torch.save(stats, tmp_path / "corpus" / "data" / "fbank_stats.pt")
    x = torch.from_numpy(tones(16000))
    assert_same(load_encoder(run).embed(x, 16000), enc.embed(x, 16000), atol=1e-6)


def test_cli_writes_files_that_load_back(run_dir, enc, tone_data, tmp_path, capsys):
    files = [str(p) for p in wavs(tone_data)[:4]]
    out = tmp_path / "emb"
    argv = ["--run-dir", str(run_dir), "--out", str(out), "--no-progress"]
    assert extract_main([*argv, "--files", *files, "--frames", "--batch-duration", "3"]) == 0
    assert "extracted 4 clips" in capsys.readouterr().out
    ref = enc.embed_files(files, progress=False)
    got = load_embeddings(out)
    assert got["ids"] == files and got["meta"]["num_items"] == 4
    pooled = np.load(out / "pooled.npy")
    assert pooled.shape == (4, 32) and pooled.dtype == np.float32
    np.testing.assert_allclose(pooled, ref.pooled().numpy(), atol=ATOL)
    for i, e in enumerate(ref):
        np.testing.assert_allclose(got["frames"][i], e.frames.numpy(), atol=ATOL)
        np.testing.assert_array_equal(got["times"][i], e.times.numpy())
    with pytest.raises(ConfigError, match="--overwrite"):
        extract_main([*argv, "--files", *files])

    # a list with a comment and an unreadable entry: an error naming it, or skipped
    bad = tmp_path / "bad.ogg"
    bad.write_bytes(b"\0" * 100)
    lst = tmp_path / "files.txt"
    lst.write_text("# clips\n" + "\n".join([files[0], str(bad), files[1]]) + "\n\n")
    out2 = tmp_path / "emb2"
    assert extract_main(["--run-dir", str(run_dir), "--out", str(out2), "--list", str(lst)]) == 1
    assert "bad.ogg" in capsys.readouterr().err
    assert not (out2 / "pooled.npy").exists() and not list(out2.glob("*.partial"))
    args = ["--run-dir", str(run_dir), "--out", str(out2), "--list", str(lst), "--skip-errors"]
    assert extract_main(args) == 0
    got = load_embeddings(out2)
    assert got["ids"] == files[:2] and list(got["meta"]["failed"]) == [str(bad)]
    np.testing.assert_allclose(got["pooled"], ref.pooled()[:2].numpy(), atol=ATOL)

    # cuts, frames in float16
    out3 = tmp_path / "emb3"
    args = ["--run-dir", str(run_dir), "--out", str(out3), "--cuts", str(tone_data["dev"])]
    assert extract_main([*args, "--frames", "--frames-dtype", "float16"]) == 0
    got = load_embeddings(out3)
    cuts = CutSet.from_file(tone_data["dev"])
    assert got["ids"] == [c.id for c in cuts] and got["frames"][0].dtype == np.float16
    np.testing.assert_allclose(
        got["pooled"], enc.embed_cuts(cuts, progress=False).pooled().numpy(), atol=ATOL
    )
