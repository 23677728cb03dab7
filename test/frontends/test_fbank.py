"""Kaldi-compatible fbank frontend: frame counts, padding invariance, torchaudio equality."""

from __future__ import annotations

import pytest
import torch

from toolkit.frontends.fbank import Fbank
from toolkit.frontends.specaugment import SpecAugment


def test_frames_and_padding_invariance():
    fb = Fbank().eval()
    torch.manual_seed(0)
    a, b = torch.randn(16000), torch.randn(9000)
    batch = torch.zeros(2, 16000)
    batch[0], batch[1, :9000] = a, b
    feats, lens = fb(batch, torch.tensor([16000, 9000]))
    assert lens.tolist() == [98, 54] and feats.shape == (2, 98, 80)
    alone, alone_lens = fb(b[None], torch.tensor([9000]))
    assert alone_lens.tolist() == [54]
    torch.testing.assert_close(feats[1, :54], alone[0, :54], rtol=0, atol=1e-5)


def test_stats_file_normalises(tmp_path):
    torch.save({"mean": torch.full((80,), 2.0), "std": torch.full((80,), 4.0)}, tmp_path / "s.pt")
    x = torch.randn(1, 8000)
    raw, _ = Fbank()(x, torch.tensor([8000]))
    norm, _ = Fbank(stats_file=str(tmp_path / "s.pt"))(x, torch.tensor([8000]))
    torch.testing.assert_close(norm, (raw - 2.0) / 4.0)


def test_matches_torchaudio_kaldi_fbank():
    ta = pytest.importorskip(
        "torchaudio.compliance.kaldi", reason="torchaudio is an optional extra"
    )
    x = torch.randn(1, 16000)
    ours, _ = Fbank()(x, torch.tensor([16000]))
    ref = ta.fbank(x, num_mel_bins=80, sample_frequency=16000, dither=0.0, snip_edges=True)
    torch.testing.assert_close(ours[0], ref, rtol=1e-3, atol=1e-3)


def test_specaugment_masks_only_in_training():
    sa = SpecAugment(num_freq_masks=2, freq_mask_width=10, num_time_masks=2, time_mask_ratio=0.2)
    x = torch.ones(3, 50, 80)
    lens = torch.tensor([50, 40, 20])
    assert torch.equal(sa.eval()(x, lens), x)
    torch.manual_seed(0)
    y = sa.train()(x, lens)
    assert y.shape == x.shape and (y == 0).any() and (y == 1).any()
