"""Kaldi-compatible log-mel filterbank in pure torch (batched, differentiable, GPU-ready).

Uses :class:`lhotse.features.kaldi.layers.Wav2LogFilterBank` with ``snip_edges=True``: frame ``i``
covers samples ``[i*hop, i*hop + win)`` so no frame of a clip ever touches the padding of a batch;
a clip's features are identical whether it is computed alone or padded in a batch.
Where torchaudio is installed, ``torchaudio.compliance.kaldi.fbank`` gives the same numbers
(checked by ``test/test_fbank.py`` when torchaudio imports).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from toolkit.config import ConfigError
from toolkit.registry import FRONTENDS


def num_frames(num_samples: Tensor, frame_length: int, hop: int) -> Tensor:
    """Number of snip-edges frames for ``num_samples`` samples: ``1 + (S - win) // hop`` (≥ 0)."""
    return torch.clamp(torch.div(num_samples - frame_length, hop, rounding_mode="floor") + 1, min=0)


@FRONTENDS.register("fbank")
class Fbank(nn.Module):
    """Waveform ``(B, S)`` at ``sampling_rate`` Hz → log-mel ``(B, T, num_mel_bins)`` at 100 frames/s.

    Args:
        num_mel_bins: mel filters (80 in the study).
        sampling_rate: expected input rate in Hz (the data loader resamples to it).
        frame_length_ms / frame_shift_ms: analysis window and hop in milliseconds.
        dither: Kaldi dither amplitude, applied in training mode only.
        stats_file: optional ``.pt`` with ``mean``/``std`` (F,) tensors written by
            ``toolkit.bin.compute_stats``; features are normalised with them (global CMVN).
    """

    def __init__(
        self,
        num_mel_bins: int = 80,
        sampling_rate: int = 16000,
        frame_length_ms: float = 25.0,
        frame_shift_ms: float = 10.0,
        dither: float = 0.0,
        stats_file: str | None = None,
    ) -> None:
        super().__init__()
        from lhotse.features.kaldi.layers import Wav2LogFilterBank

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # snip_edges warning: we want it
            self.fbank = Wav2LogFilterBank(
                sampling_rate=sampling_rate,
                frame_length=frame_length_ms / 1000,
                frame_shift=frame_shift_ms / 1000,
                num_filters=num_mel_bins,
                snip_edges=True,
                dither=0.0,
            )
        for p in self.fbank.parameters():
            p.requires_grad_(False)
        self.output_dim = num_mel_bins
        self.sampling_rate = sampling_rate
        self.win = int(round(sampling_rate * frame_length_ms / 1000))
        self.hop = int(round(sampling_rate * frame_shift_ms / 1000))
        self.dither = dither
        mean, std = torch.zeros(num_mel_bins), torch.ones(num_mel_bins)
        if stats_file:
            if not Path(stats_file).is_file():
                raise ConfigError(
                    f"frontend.stats_file: {stats_file} does not exist (run the stats stage)"
                )
            stats = torch.load(stats_file, map_location="cpu")
            mean, std = stats["mean"].float(), stats["std"].float()
            if mean.shape != (num_mel_bins,):
                raise ConfigError(
                    f"frontend.stats_file: {stats_file} has {mean.shape[0]} bins, "
                    f"expected {num_mel_bins}"
                )
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("inv_std", 1.0 / std.clamp(min=1e-5), persistent=False)

    def forward(self, audio: Tensor, audio_lens: Tensor) -> tuple[Tensor, Tensor]:
        """audio ``(B, S)`` float, audio_lens ``(B,)`` samples → ``(B, T, F)``, ``(B,)`` frames."""
        if audio.shape[1] < self.win:  # too short for a single frame: pad (lens stay 0 frames)
            audio = nn.functional.pad(audio, (0, self.win - audio.shape[1]))
        if self.training and self.dither > 0:
            mask = torch.arange(audio.shape[1], device=audio.device)[None] < audio_lens[:, None]
            audio = audio + self.dither * torch.randn_like(audio) * mask
        feats = self.fbank(audio.float())
        lens = num_frames(audio_lens, self.win, self.hop)
        feats = (feats - self.mean) * self.inv_std
        return feats, lens
