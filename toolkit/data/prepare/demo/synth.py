"""Small numpy DSP helpers shared by the demo-corpus synthesisers (16 kHz, float64 mono)."""

from __future__ import annotations

from functools import lru_cache
from math import gcd

import numpy as np

SR = 16000
MIN_DUR = 1.0
MAX_DUR = 8.0
NOISE_COLORS = ("white", "pink", "brown")


def seconds(n: int) -> float:
    """Duration in seconds of ``n`` samples at :data:`SR`."""
    return n / SR


def num_samples(dur: float) -> int:
    """Number of samples of ``dur`` seconds at :data:`SR`."""
    return int(round(dur * SR))


def rms(x: np.ndarray) -> float:
    """Root-mean-square level (tiny floor to avoid division by zero)."""
    return float(np.sqrt(np.mean(np.square(x)) + 1e-20))


def fft_length(n: int) -> int:
    """Smallest ``2^a 3^b 5^c >= n``: FFTs of such lengths are fast (an arbitrary length, e.g. a
    large prime, can be 20-60x slower)."""
    best = 1 << max(0, n - 1).bit_length()
    f5 = 1
    while f5 < best:
        f35 = f5
        while f35 < best:
            f = f35
            while f < n:
                f *= 2
            best = min(best, f)
            f35 *= 3
        f5 *= 5
    return best


def spectral_shape(x: np.ndarray, gain_fn) -> np.ndarray:
    """Filter ``x`` by multiplying its spectrum with ``gain_fn(freqs_hz)`` (zero-phase; ``x`` is
    zero-padded to :func:`fft_length` and the result cut back to ``len(x)``)."""
    n, m = len(x), fft_length(len(x))
    spec = np.fft.rfft(x, m)
    freqs = np.fft.rfftfreq(m, 1.0 / SR)
    return np.fft.irfft(spec * gain_fn(freqs), n=m)[:n]


def colored_noise(rng: np.random.Generator, n: int, color: str = "white") -> np.ndarray:
    """Unit-RMS white, pink (1/f power) or brown (1/f^2 power) noise of ``n`` samples."""
    x = rng.standard_normal(n)
    if color == "pink":
        x = spectral_shape(x, lambda f: 1.0 / np.sqrt(np.maximum(f, 20.0)))
    elif color == "brown":
        x = spectral_shape(x, lambda f: 1.0 / np.maximum(f, 20.0))
    elif color != "white":
        raise ValueError(f"unknown noise color {color!r}")
    return x / rms(x)


def lowpass(x: np.ndarray, cutoff: float, order: float = 4.0) -> np.ndarray:
    """Butterworth-like magnitude low-pass (zero-phase, via FFT)."""
    return spectral_shape(x, lambda f: 1.0 / np.sqrt(1.0 + (f / cutoff) ** (2 * order)))


def highpass(x: np.ndarray, cutoff: float, order: float = 4.0) -> np.ndarray:
    """Butterworth-like magnitude high-pass (zero-phase, via FFT)."""
    return spectral_shape(
        x, lambda f: 1.0 / np.sqrt(1.0 + (cutoff / np.maximum(f, 1e-3)) ** (2 * order))
    )


def formant_filter(x: np.ndarray, centers: list[float], widths: list[float]) -> np.ndarray:
    """Sum of Gaussian band-pass resonances at ``centers`` Hz with ``widths`` Hz (via FFT)."""

    def gain(f: np.ndarray) -> np.ndarray:
        return sum(np.exp(-0.5 * ((f - c) / w) ** 2) for c, w in zip(centers, widths, strict=True))

    return spectral_shape(x, gain)


def exp_decay(n: int, tau: float, attack: float = 0.003) -> np.ndarray:
    """Envelope with a linear attack of ``attack`` s and exponential decay (time constant tau)."""
    t = np.arange(n) / SR
    env = np.exp(-t / tau)
    na = min(n, max(1, num_samples(attack)))
    env[:na] *= np.linspace(0.0, 1.0, na)
    return env


def adsr(n: int, attack: float, decay: float, sustain: float, release: float) -> np.ndarray:
    """Piecewise-linear ADSR envelope of ``n`` samples (release inside the ``n`` samples)."""
    na, nd, nr = (max(1, num_samples(v)) for v in (attack, decay, release))
    na, nd = min(na, n), min(nd, max(0, n - na))
    nr = min(nr, max(0, n - na - nd))
    ns = n - na - nd - nr
    return np.concatenate(
        [
            np.linspace(0.0, 1.0, na, endpoint=False),
            np.linspace(1.0, sustain, nd, endpoint=False),
            np.full(ns, sustain),
            np.linspace(sustain, 0.0, nr),
        ]
    )[:n]


def fade(x: np.ndarray, fade_in: float = 0.01, fade_out: float = 0.02) -> np.ndarray:
    """Apply short linear fades at both ends (in place; returns ``x``)."""
    ni, no = min(len(x), num_samples(fade_in)), min(len(x), num_samples(fade_out))
    if ni:
        x[:ni] *= np.linspace(0.0, 1.0, ni)
    if no:
        x[len(x) - no :] *= np.linspace(1.0, 0.0, no)
    return x


def add_at(dst: np.ndarray, src: np.ndarray, start: int) -> None:
    """Add ``src`` into ``dst`` starting at sample ``start`` (clipped to ``dst``'s bounds)."""
    if start < 0:
        src, start = src[-start:], 0
    if start >= len(dst) or len(src) == 0:
        return
    end = min(len(dst), start + len(src))
    dst[start:end] += src[: end - start]


def fit_length(x: np.ndarray, n: int) -> np.ndarray:
    """Zero-pad or trim (with a short fade-out) ``x`` to exactly ``n`` samples."""
    if len(x) >= n:
        return fade(x[:n].copy(), 0.0, 0.05) if len(x) > n else x
    return np.concatenate([x, np.zeros(n - len(x))])


def mix_snr(signal: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """Return ``signal + g * noise`` where ``g`` sets the signal-to-noise ratio to ``snr_db``."""
    gain = rms(signal) / (rms(noise) * 10.0 ** (snr_db / 20.0))
    return signal + gain * noise[: len(signal)]


def normalize_peak(x: np.ndarray, peak_db: float) -> np.ndarray:
    """Scale ``x`` so that its absolute peak is ``peak_db`` dBFS (never clips for peak_db < 0)."""
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    if peak <= 0.0:
        return x
    return x * (10.0 ** (peak_db / 20.0) / peak)


def random_peak_db(rng: np.random.Generator) -> float:
    """A random clip peak level in dBFS (random gain so loudness is not a label cue)."""
    return float(rng.uniform(-14.0, -1.0))


@lru_cache(maxsize=8)
def _resample_kernel(up: int, down: int, half_width: int) -> np.ndarray:
    """Polyphase windowed-sinc (Kaiser) weights of shape ``(up, 2 * half_width)``."""
    cutoff = 0.5 * min(1.0, up / down) * 0.94  # cycles per input sample
    taps = np.arange(-half_width + 1, half_width + 1)
    phase = np.arange(up)[:, None] / up
    tau = phase - taps[None, :]
    beta = 8.6
    inside = np.clip(1.0 - (tau / half_width) ** 2, 0.0, None)
    window = np.i0(beta * np.sqrt(inside)) / np.i0(beta)
    kernel = 2 * cutoff * np.sinc(2 * cutoff * tau) * window
    return kernel / kernel.sum(axis=1, keepdims=True)


def resample(x: np.ndarray, sr_in: int, sr_out: int = SR, half_width: int = 24) -> np.ndarray:
    """Band-limited rational resampling with a polyphase windowed-sinc interpolator.

    Output ``n`` reads the ``2 * half_width`` input samples around ``n * down / up`` with the
    weights of its phase ``n * down mod up``; outputs ``n ≡ p (mod up)`` share one phase, so each
    residue class is one matrix-vector product over a strided view of the input.
    """
    if sr_in == sr_out:
        return np.asarray(x, dtype=np.float64)
    g = gcd(sr_in, sr_out)
    up, down = sr_out // g, sr_in // g
    kernel = _resample_kernel(up, down, half_width)
    xp = np.concatenate([np.zeros(half_width), np.asarray(x, np.float64), np.zeros(half_width)])
    windows = np.lib.stride_tricks.sliding_window_view(xp, 2 * half_width)
    n_out = len(x) * up // down
    out = np.empty(n_out)
    for p in range(min(up, n_out)):
        n = np.arange(p, n_out, up)
        out[n] = windows[n * down // up + 1] @ kernel[p * down % up]
    return out
