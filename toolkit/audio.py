"""The audio reader: any file, cut or array → mono float32 at the model's rate; windowing of long
audio.

Every path into a model reads audio here (the training data loader, evaluation, embedding
export, the HEAR API, the model API), so a file gives the same samples everywhere:

* channels are averaged (mono), then the signal is resampled with a windowed-sinc resampler
  (``torchaudio.functional.resample`` when torchaudio imports, otherwise lhotse's copy of the
  same algorithm: Hann-windowed sinc, ``lowpass_filter_width=6``, ``rolloff=0.99``);
* an empty signal or one with NaN/Inf samples raises :class:`AudioLoadError` naming the file or
  cut (callers skip and count it); so does a file lhotse's backends cannot read.

Long audio is cut into windows by :func:`window_plan` (the rule is documented there and in
docs/extract.md).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn


class AudioLoadError(ValueError):
    """An audio file or cut could not be read, or holds no usable samples (the message names
    it and the reason)."""


# --------------------------------------------------------------------------- signal


def resample(
    audio: Tensor,
    orig_sr: int,
    new_sr: int,
    backend: Literal["auto", "torchaudio", "lhotse"] = "auto",
) -> Tensor:
    """Band-limited (Hann-windowed sinc) resampling of ``(..., S)`` float audio on the CPU.

    ``auto`` uses ``torchaudio.functional.resample`` when torchaudio imports, else
    ``lhotse.augmentation.resample.Resample`` (lhotse's copy of the same torchaudio algorithm,
    same defaults: ``lowpass_filter_width=6``, ``rolloff=0.99``).
    """
    if orig_sr == new_sr:
        return audio
    if backend in ("auto", "torchaudio"):
        try:
            import torchaudio.functional as taf
        except ImportError:
            if backend == "torchaudio":
                raise
        else:
            return taf.resample(audio, orig_sr, new_sr)
    return _lhotse_resampler(int(orig_sr), int(new_sr))(audio)


@functools.lru_cache(maxsize=8)
def _lhotse_resampler(orig_sr: int, new_sr: int) -> nn.Module:
    from lhotse.augmentation.resample import Resample

    return Resample(orig_sr, new_sr)


def to_mono(audio: Tensor | np.ndarray) -> Tensor:
    """``(S,)`` or ``(C, S)`` float audio → ``(S,)`` float32 CPU tensor (mean over channels)."""
    x = torch.as_tensor(audio).detach()
    if not x.is_floating_point():
        raise TypeError(f"audio must be floating point in [-1, 1], got {x.dtype}")
    x = x.to("cpu", torch.float32)
    if x.dim() == 2:
        if x.shape[0] > x.shape[1]:
            raise ValueError(
                f"audio of shape {tuple(x.shape)}: expected (channels, samples); "
                "transpose (samples, channels) arrays first"
            )
        x = x.mean(dim=0)
    elif x.dim() != 1:
        raise ValueError(f"audio must be (S,) or (C, S), got shape {tuple(x.shape)}")
    return x


def checked(audio: np.ndarray | Tensor, what: str) -> Any:
    """``audio`` unchanged, or :class:`AudioLoadError` naming ``what`` when it has no samples or
    any NaN/Inf sample."""
    x = torch.as_tensor(audio)
    if x.numel() == 0:
        raise AudioLoadError(f"cannot read {what}: no samples")
    if not bool(torch.isfinite(x).all()):
        raise AudioLoadError(f"cannot read {what}: non-finite (NaN/Inf) samples")
    return audio


def mono_at(audio: Tensor | np.ndarray, sampling_rate: int, target_rate: int, what: str) -> Tensor:
    """Any-rate ``(S,)`` / ``(C, S)`` float audio → checked ``(S,)`` float32 at ``target_rate``."""
    x = resample(to_mono(audio), int(sampling_rate), int(target_rate))
    return checked(x, what)


def reason(e: BaseException) -> str:
    """One short line from an exception (lhotse's multi-backend errors: the first backend's)."""
    lines = str(e).splitlines()
    for ln in lines:
        if ln.startswith("Exception #"):
            return ln.rsplit("'>: ", 1)[-1][:300]
    return f"{type(e).__name__}: {lines[0] if lines else ''}"[:300]


# --------------------------------------------------------------------------- files and cuts


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Read a file with lhotse's audio backends (soundfile: wav/flac/ogg; mp3 etc. via ffmpeg
    or torchaudio where installed) → ``(C, S)`` float32 at the file's rate, and the rate.

    Raises:
        AudioLoadError: naming the file, if it is missing, unreadable, empty or non-finite.
    """
    from lhotse import Recording

    path = Path(path)
    if not path.is_file():
        raise AudioLoadError(f"cannot read audio file '{path}': no such file")
    try:
        rec = Recording.from_file(str(path))
        audio = np.asarray(rec.load_audio(), dtype=np.float32)
    except Exception as e:
        raise AudioLoadError(f"cannot read audio file '{path}': {reason(e)}") from e
    return checked(audio, f"audio file '{path}'"), rec.sampling_rate


def wav_missing_bytes(path: str | Path) -> int:
    """For a RIFF/WAVE file: how many bytes of its ``data`` chunk, as its header declares it,
    are missing from the file (a truncated download or copy; decoders read such a file as a
    shorter one without complaint); 0 for a complete file or another format."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return 0
            size = Path(path).stat().st_size
            while True:
                chunk = f.read(8)
                if len(chunk) < 8:
                    return 0
                length = int.from_bytes(chunk[4:8], "little")
                if chunk[:4] == b"data":
                    return max(0, f.tell() + length - size)
                f.seek(length + (length & 1), 1)
    except OSError:
        return 0


def read_cut(cut: Any) -> tuple[np.ndarray, int]:
    """A lhotse cut's audio at its own rate → ``(C, S)`` float32 and the rate.

    Raises:
        AudioLoadError: naming the cut, if its audio cannot be read, is empty or non-finite.
    """
    try:
        audio = np.asarray(cut.load_audio(), dtype=np.float32)
    except Exception as e:
        raise AudioLoadError(f"cannot read audio of cut '{cut.id}': {reason(e)}") from e
    return checked(audio, f"audio of cut '{cut.id}'"), int(cut.sampling_rate)


def cut_mono(cut: Any, sampling_rate: int) -> np.ndarray:
    """A cut's audio averaged over channels and resampled to ``sampling_rate`` → ``(S,)``."""
    audio, sr = read_cut(cut)
    return mono_at(audio, sr, sampling_rate, f"audio of cut '{cut.id}'").numpy()


# --------------------------------------------------------------------------- windowing


@dataclass(frozen=True)
class Window:
    """One encoder call on a slice of a clip.

    ``start``/``end``: samples; ``first``: grid index of the window's frame 0; grid frames
    ``keep_from <= g < keep_to`` (``keep_to`` None: to the end) are taken from this window.
    """

    start: int
    end: int
    first: int
    keep_from: int
    keep_to: int | None


def window_plan(
    num_samples: int,
    sampling_rate: int,
    frame_rate: float,
    window_seconds: float,
    hop_seconds: float,
) -> list[Window]:
    """Windows covering ``num_samples`` samples.

    A clip of at most ``window_seconds`` is one window (encoded whole). Otherwise the hop is
    ``hop_frames = max(1, floor(hop_seconds * frame_rate))`` encoder frames; window ``k``
    starts at sample ``round(k * hop_frames * sampling_rate / frame_rate)`` and ends
    ``window_seconds`` later or at the clip end; there are ``1 + ceil((S - W) / hop)`` windows
    for ``S > W`` samples. Where two windows overlap, grid frames before the middle of the
    overlap come from the earlier window and the rest from the later one.
    """
    period = sampling_rate / frame_rate  # samples per encoder frame
    win = int(round(window_seconds * sampling_rate))
    hop_frames = max(1, int(math.floor(hop_seconds * frame_rate + 1e-6)))
    if hop_frames * period > win + 0.5:
        raise ValueError(f"hop ({hop_seconds} s) must not exceed the window ({window_seconds} s)")
    if num_samples <= win:
        return [Window(0, num_samples, 0, 0, None)]
    count = 1 + math.ceil((num_samples - win) / (hop_frames * period))
    starts = [int(round(k * hop_frames * period)) for k in range(count)]
    ends = [min(s + win, num_samples) for s in starts]
    keep = [0] + [
        k * hop_frames + max(0, int((ends[k - 1] - starts[k]) / period // 2))
        for k in range(1, count)
    ]
    return [
        Window(starts[k], ends[k], k * hop_frames, keep[k], keep[k + 1] if k + 1 < count else None)
        for k in range(count)
    ]
