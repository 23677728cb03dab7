"""Batch dicts from CutSets: shapes, skip-and-count for bad audio, resampling, downmixing."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import soundfile as sf
import torch
from lhotse import CutSet, MonoCut, Recording, SupervisionSegment

from toolkit.data.dataset import CaptionDataset
from toolkit.data.sampling import make_sampler, rescale_position
from toolkit.text.tokenizer import SentencePieceTokenizer


def test_batch_shapes(tone_data):
    cuts = CutSet.from_file(tone_data["train"]).subset(first=5)
    tok = SentencePieceTokenizer(str(tone_data["spm"]))
    batch = CaptionDataset(tok, seed=0)[cuts]
    b = len(cuts)
    assert batch["audio"].shape[0] == b and batch["audio"].dtype == torch.float32
    assert batch["audio_lens"].shape == (b,)
    assert int(batch["audio_lens"].max()) == batch["audio"].shape[1]
    assert batch["text_tokens"].shape[0] == b and batch["text_tokens"].dtype == torch.long
    assert batch["text_lens"].tolist() == [int((t != 0).sum()) for t in batch["text_tokens"]]
    assert batch["cut_ids"] == [c.id for c in cuts]
    assert set(batch["labels"]) == {"sound_pitch", "sound_pattern"}
    assert batch["num_skipped"] == 0
    assert abs(batch["duration"] - sum(c.duration for c in cuts)) < 1e-3


def test_caption_choice_is_deterministic_per_epoch(tone_data):
    cuts = CutSet.from_file(tone_data["train"])
    ds = CaptionDataset(None, seed=1)
    a, b = ds[cuts]["captions"], ds[cuts]["captions"]
    assert a == b
    ds.set_epoch(1)
    assert ds[cuts]["captions"] != a  # another epoch, other captions (36 clips × 2 captions)


def test_missing_and_corrupt_audio_are_skipped_and_counted(tone_data, tmp_path, caplog):
    good = list(CutSet.from_file(tone_data["train"]).subset(first=2))
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")
    bad = []
    for name, path in (("missing", tmp_path / "nope.wav"), ("corrupt", corrupt)):
        rec = good[0].recording.__class__(
            id=name,
            sources=[
                type(good[0].recording.sources[0])(type="file", channels=[0], source=str(path))
            ],
            sampling_rate=16000,
            num_samples=16000,
            duration=1.0,
        )
        sup = SupervisionSegment(name, name, 0.0, 1.0, custom={"caption": ["x"]})
        bad.append(MonoCut(name, 0.0, 1.0, 0, recording=rec, supervisions=[sup]))
    with caplog.at_level(logging.WARNING):
        batch = CaptionDataset(None)[CutSet.from_cuts(good + bad)]
    assert batch["num_skipped"] == 2 and batch["skipped_ids"] == ["missing", "corrupt"]
    assert batch["audio"].shape[0] == 2
    assert "missing" in caplog.text and "corrupt" in caplog.text
    empty = CaptionDataset(None)[CutSet.from_cuts(bad)]
    assert empty["cut_ids"] == [] and empty["num_skipped"] == 2


def test_resample_and_downmix(tmp_path):
    sr = 44100
    t = np.arange(sr) / sr
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 440 * t)], 1) * 0.5
    sf.write(tmp_path / "s.flac", stereo.astype(np.float32), sr)
    rec = Recording.from_file(tmp_path / "s.flac")
    sup = SupervisionSegment("s", "s", 0.0, rec.duration, custom={"caption": ["tone"]})
    cut = rec.to_cut()  # a 2-channel MultiCut: the dataset averages channels
    cut.supervisions = [sup]
    batch = CaptionDataset(None, sampling_rate=16000)[CutSet.from_cuts([cut])]
    assert batch["audio"].shape == (1, 16000)
    assert abs(float(batch["audio"].abs().max()) - 0.5) < 0.02


def test_long_clips_are_cropped(tone_data):
    cuts = CutSet.from_file(tone_data["train"]).subset(first=3)
    batch = CaptionDataset(None, max_clip_duration=0.3, train=True)[cuts]
    assert int(batch["audio_lens"].max()) <= int(0.3 * 16000) + 1


def test_ddp_ranks_get_disjoint_cuts(tone_data):
    cuts = CutSet.from_file(tone_data["train"])
    seen = []
    for rank in (0, 1):
        s = make_sampler(cuts, max_duration=4.0, world_size=2, rank=rank, seed=3, num_buckets=2)
        s.set_epoch(1)
        seen.append([c.id for b in s for c in b])
    assert not set(seen[0]) & set(seen[1])
    assert len(set(seen[0]) | set(seen[1])) >= 0.8 * len(cuts)


def test_sampler_skip_resumes_mid_epoch(tone_data):
    cuts = CutSet.from_file(tone_data["train"])
    s = make_sampler(cuts, max_duration=4.0, seed=5, num_buckets=2)
    s.set_epoch(2)
    full = [[c.id for c in b] for b in s]
    s.set_epoch(2, skip=3)
    assert [[c.id for c in b] for b in s] == full[3:]


def _epoch(cuts, world_size: int, rank: int, skip: int = 0, bucketing: bool = False):
    s = make_sampler(cuts, 4.0, world_size=world_size, rank=rank, seed=5, bucketing=bucketing)
    s.set_epoch(2, skip=skip)
    return [[c.id for c in b] for b in s]


def test_rescale_position_resumes_the_global_batch_sequence(tone_data):
    """Without bucketing, ranks take every world_size-th batch of one global sequence, so a 2-rank
    position maps to 1 rank exactly and to 4 ranks by rounding down (repeats, never losses)."""
    cuts = CutSet.from_file(tone_data["train"])
    full = _epoch(cuts, 1, 0)
    assert len(full) >= 12
    # the sequence does not depend on the world size (the epoch's ragged end aside)
    assert _epoch(cuts, 2, 1)[:5] == full[1::2][:5]
    consumed = 3  # batches per rank on 2 ranks = global batches 0..5
    assert rescale_position(consumed, 2, 1) == 6
    assert _epoch(cuts, 1, 0, skip=rescale_position(consumed, 2, 1)) == full[6:]
    skip4 = rescale_position(consumed, 2, 4)
    assert skip4 == 1  # 4 global batches: 4 and 5 are seen again, nothing after 5 is lost
    assert [_epoch(cuts, 4, r, skip=skip4)[0] for r in range(4)] == full[4:8]
    # with duration bucketing the amount of data matches, not the exact clips
    b1 = _epoch(cuts, 1, 0, bucketing=True)
    left = _epoch(cuts, 1, 0, skip=rescale_position(consumed, 2, 1), bucketing=True)
    assert len(left) == len(b1) - 6
    with pytest.raises(ValueError, match="world sizes"):
        rescale_position(3, 0, 2)
