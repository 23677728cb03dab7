"""Sound-event clips for the demo corpus: ten synthesised event classes over coloured noise.

Five classes are countable (``beep``, ``water drop``, ``dog bark``, ``knock``, ``bell``): a clip
holds one to four occurrences placed at random, with the clip length drawn independently of the
count. The other five (``siren``, ``engine``, ``rain``, ``footsteps``, ``wind``) are continuous
and carry no count.
"""

from __future__ import annotations

import numpy as np

from toolkit.data.prepare.demo.synth import (
    MAX_DUR,
    NOISE_COLORS,
    SR,
    add_at,
    adsr,
    colored_noise,
    exp_decay,
    fade,
    formant_filter,
    highpass,
    lowpass,
    num_samples,
    rms,
)

EVENTS = (
    "siren",
    "beep",
    "engine",
    "rain",
    "footsteps",
    "water drop",
    "dog bark",
    "knock",
    "bell",
    "wind",
)
COUNTABLE = ("beep", "water drop", "dog bark", "knock", "bell")
CONTINUOUS = tuple(e for e in EVENTS if e not in COUNTABLE)
COUNTS = ("one", "two", "three", "four")
# Minimum onset-to-onset spacing (s) of countable events, so occurrences stay distinct.
SPACING = {"beep": 0.45, "water drop": 0.35, "dog bark": 0.5, "knock": 0.3, "bell": 0.7}


def smooth_random(rng: np.random.Generator, n: int, rate: float, lo: float, hi: float):
    """A slowly varying random curve in ``[lo, hi]`` with about ``rate`` knots per second."""
    knots = max(2, int(n / SR * rate) + 2)
    values = rng.uniform(lo, hi, size=knots)
    return np.interp(np.arange(n), np.linspace(0, n - 1, knots), values)


def _tone(freq: np.ndarray | float, n: int, harmonics: tuple[float, ...]) -> np.ndarray:
    """Harmonic tone with (possibly time-varying) fundamental ``freq``; no aliased harmonics."""
    freq = np.broadcast_to(freq, (n,))
    phase = 2 * np.pi * np.cumsum(freq) / SR
    top = float(np.max(freq)) if n else 0.0
    out = np.zeros(n)
    for k, a in enumerate(harmonics):
        if a and (k + 1) * top < 0.45 * SR:
            out += a * np.sin((k + 1) * phase)
    return out


def _occurrence(event: str, p: dict, rng: np.random.Generator) -> np.ndarray:
    """One occurrence of a countable event with clip-level parameters ``p``."""
    if event == "beep":
        n = num_samples(p["len"])
        return _tone(p["freq"], n, (1.0, 0.0, 0.3, 0.0, 0.15)) * adsr(n, 0.005, 0.0, 1.0, 0.01)
    if event == "water drop":
        n = num_samples(0.15)
        t = np.arange(n) / SR
        freq = p["freq"] * (1.0 + p["rise"] * (1.0 - np.exp(-t / 0.012)))
        return _tone(freq, n, (1.0,)) * exp_decay(n, p["tau"], 0.001)
    if event == "dog bark":
        n = num_samples(p["len"] * rng.uniform(0.9, 1.1))
        t = np.arange(n) / SR
        f0 = p["f0"] * (1.0 + 0.25 * np.exp(-t / 0.05))
        harm = tuple(1.0 / (k + 1) for k in range(12))
        x = _tone(f0, n, harm) + 0.6 * rng.standard_normal(n)
        x = formant_filter(x, p["formants"], [200.0, 350.0, 500.0])
        return x * adsr(n, 0.01, 0.05, 0.6, 0.06)
    if event == "knock":
        n = num_samples(0.12)
        t = np.arange(n) / SR
        modes = sum(
            a * np.sin(2 * np.pi * p["freq"] * r * t) * np.exp(-t / (p["tau"] / r))
            for r, a in ((1.0, 1.0), (2.3, 0.5), (3.9, 0.3))
        )
        click = highpass(rng.standard_normal(n), 1500.0) * np.exp(-t / 0.002) * 0.5
        return (modes + click) * rng.uniform(0.8, 1.0)
    if event == "bell":
        n = num_samples(p["ring"])
        t = np.arange(n) / SR
        partials = ((1.0, 1.0, 1.0), (2.0, 0.6, 0.7), (2.76, 0.5, 0.5), (5.4, 0.3, 0.3))
        x = sum(
            a * np.sin(2 * np.pi * p["freq"] * r * t) * np.exp(-t / (p["ring"] * d / 2.5))
            for r, a, d in partials
        )
        return x * exp_decay(n, 100.0, 0.002)
    raise ValueError(f"{event!r} is not a countable event")


def _countable_params(event: str, rng: np.random.Generator) -> dict:
    """Clip-level parameters shared by all occurrences of a countable event."""
    if event == "beep":
        return {"freq": rng.uniform(1500, 3200), "len": rng.uniform(0.12, 0.3)}
    if event == "water drop":
        return {"freq": rng.uniform(600, 1400), "rise": rng.uniform(0.5, 1.5), "tau": 0.04}
    if event == "dog bark":
        formants = [rng.uniform(700, 1100), rng.uniform(1800, 2600), rng.uniform(3000, 3800)]
        return {"f0": rng.uniform(350, 650), "formants": formants, "len": rng.uniform(0.15, 0.3)}
    if event == "knock":
        return {"freq": rng.uniform(150, 350), "tau": rng.uniform(0.015, 0.035)}
    return {"freq": rng.uniform(500, 1200), "ring": rng.uniform(1.0, 1.8)}


def _countable(event: str, count: int, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Clip with ``count`` occurrences; returns the clip and the occurrences' active RMS."""
    p = _countable_params(event, rng)
    spacing = SPACING[event] * rng.uniform(1.0, 1.6)
    if event in ("knock", "water drop"):  # knocks and drips come in quick regular runs
        onsets = np.arange(count) * spacing * rng.uniform(0.9, 1.1, size=count).cumprod()
    else:
        onsets = np.concatenate([[0.0], np.cumsum(spacing + rng.exponential(0.3, count - 1))])
    sounds = [_occurrence(event, p, rng) for _ in range(count)]
    span = onsets[-1] + len(sounds[-1]) / SR
    dur = max(rng.uniform(1.5, MAX_DUR - 0.5), span + 0.4)
    dur = min(dur, MAX_DUR)
    start = rng.uniform(0.1, max(0.1, dur - span - 0.1))
    clip = np.zeros(num_samples(dur))
    for onset, snd in zip(onsets, sounds, strict=True):
        add_at(clip, snd, num_samples(start + onset))
    return clip, rms(np.concatenate(sounds))


def _continuous(event: str, n: int, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Clip of a continuous event class and descriptive metadata."""
    t = np.arange(n) / SR
    if event == "siren":
        yelp = bool(rng.random() < 0.4)
        period = rng.uniform(0.25, 0.45) if yelp else rng.uniform(1.5, 3.0)
        tri = 2.0 * np.abs(((t / period + rng.random()) % 1.0) - 0.5)
        freq = rng.uniform(700, 1000) + rng.uniform(300, 600) * tri
        x = _tone(freq, n, (1.0, 0.4, 0.2)) * smooth_random(rng, n, 0.5, 0.6, 1.0)
        return x, {"style": "yelping" if yelp else "wailing"}
    if event == "engine":
        f0 = rng.uniform(25, 60) * smooth_random(rng, n, 0.7, 0.9, 1.1)
        x = _tone(f0, n, tuple(1.0 / (k + 1) ** 0.8 for k in range(30)))
        x *= 1.0 + 0.3 * np.sin(2 * np.pi * np.cumsum(f0 / 2) / SR)
        x += 0.5 * lowpass(colored_noise(rng, n, "brown"), 300.0)
        return x, {"style": "idling" if np.mean(f0) < 40 else "revving"}
    if event == "rain":
        x = highpass(colored_noise(rng, n, "pink"), 500.0) * smooth_random(rng, n, 1.0, 0.7, 1.0)
        rate = rng.uniform(15, 60)
        drop = highpass(rng.standard_normal(num_samples(0.004)), 2500.0)
        for onset in rng.uniform(0, n, size=int(rate * n / SR)):
            add_at(x, drop * rng.uniform(0.5, 3.0), int(onset))
        return x, {"style": "heavy" if rate > 35 else "light"}
    if event == "footsteps":
        step = rng.uniform(0.45, 0.7)
        cutoff = rng.uniform(500, 1500)
        x = np.zeros(n)
        for onset in np.arange(rng.uniform(0, step), n / SR - 0.1, step):
            m = num_samples(0.1)
            hit = lowpass(rng.standard_normal(m), cutoff) * exp_decay(m, 0.02, 0.002)
            add_at(x, hit, num_samples(onset + rng.normal(0, 0.015)))
            add_at(x, 0.4 * hit, num_samples(onset + 0.035))  # heel then toe
        return x, {"style": "brisk" if step < 0.55 else "slow"}
    if event == "wind":
        base = lowpass(colored_noise(rng, n, "brown"), rng.uniform(400, 900), order=2)
        whistle = formant_filter(rng.standard_normal(n), [rng.uniform(400, 900)], [40.0])
        whistle /= rms(whistle)
        gust = smooth_random(rng, n, rng.uniform(0.5, 1.2), 0.1, 1.0) ** 2
        x = (base / rms(base) + 0.4 * whistle * gust) * gust
        return x, {"style": "gusty"}
    raise ValueError(f"unknown continuous event {event!r}")


def synth_sound(rng: np.random.Generator, event: str, count: str | None) -> tuple[np.ndarray, dict]:
    """One 1.5-8 s sound-event clip over background noise; ``count`` only for countable events."""
    meta: dict = {"event": event, "count": count}
    if event in COUNTABLE:
        if count not in COUNTS:
            raise ValueError(f"countable event {event!r} needs a count in {COUNTS}")
        fg, level = _countable(event, COUNTS.index(count) + 1, rng)
    else:
        fg, info = _continuous(event, num_samples(rng.uniform(2.0, MAX_DUR)), rng)
        fg = fade(fg, 0.05, 0.1)
        level = rms(fg)
        meta.update(info)
    color = NOISE_COLORS[int(rng.integers(len(NOISE_COLORS)))]
    snr = float(rng.uniform(3.0, 20.0))
    noise = colored_noise(rng, len(fg), color)
    clip = fade(fg + noise * level / 10.0 ** (snr / 20.0), 0.02, 0.05)
    meta.update({"noise_color": color, "snr": snr})
    return clip, meta
