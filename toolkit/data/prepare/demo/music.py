"""Music clips for the demo corpus: additive-synthesis instruments playing on-beat scale material.

Every clip picks a random key (12 roots), a mode (major / natural minor) whose scale supplies all
melody and chord notes, a tempo band and a texture (melody, arpeggios, block chords, scale run).
Note onsets fall on the beat, so tempo is a temporal (not spectral) property; mode is a relative-
pitch property that a time-averaged spectrum with a random root captures poorly.
"""

from __future__ import annotations

import numpy as np

from toolkit.data.prepare.demo.synth import (
    MAX_DUR,
    SR,
    add_at,
    adsr,
    colored_noise,
    exp_decay,
    fade,
    formant_filter,
    highpass,
    mix_snr,
    num_samples,
)

INSTRUMENTS = ("piano", "organ", "guitar", "flute", "violin")
MODES = ("major", "minor")
TEMPOS = ("slow", "medium", "fast")
TEXTURES = ("melody", "arpeggios", "chords", "scale")
TEMPO_BPM = {"slow": (60, 80), "medium": (100, 120), "fast": (150, 180)}
KEY_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
# Lowest MIDI note allowed for the tonic of each instrument (tonic = low + key pitch class).
REGISTER = {"piano": 62, "organ": 60, "guitar": 57, "flute": 72, "violin": 67}
# Chord progressions as scale degrees (0 = tonic); each starts and ends on the tonic.
PROGRESSIONS = ((0, 3, 4, 0), (0, 5, 3, 4, 0), (0, 3, 0, 4, 0), (0, 4, 5, 3, 0))


def midi_hz(note: float) -> float:
    """Frequency in Hz of a (possibly fractional) MIDI note number."""
    return 440.0 * 2.0 ** ((note - 69.0) / 12.0)


def degree_note(tonic: int, mode: str, degree: int) -> int:
    """MIDI note of scale ``degree`` (any integer, octaves wrap) above ``tonic``."""
    octave, step = divmod(degree, 7)
    return tonic + 12 * octave + SCALES[mode][step]


def _partials(freq: float, n: int, amps: np.ndarray, taus: np.ndarray, vib: np.ndarray | None):
    """Sum of harmonic partials ``k * freq`` (k = 1, 2, ... below 0.45 SR) with amplitudes and
    decay times (all infinite = sustained). ``sin(k phase)`` comes from the recurrence
    ``sin(k x) = 2 cos(x) sin((k-1) x) - sin((k-2) x)`` (one ``sin`` and one ``cos`` per note)."""
    num = int(np.sum(np.arange(1, len(amps) + 1) * freq < 0.45 * SR))
    t = np.arange(n) / SR
    inst = freq * (1.0 + vib) if vib is not None else np.full(n, freq)
    phase = 2 * np.pi * np.cumsum(inst) / SR
    decaying = bool(np.all(np.isfinite(taus[:num])))
    two_cos, prev, cur = 2.0 * np.cos(phase), np.zeros(n), np.sin(phase)
    out = np.zeros(n)
    for i in range(num):
        out += amps[i] * cur * np.exp(-t / taus[i]) if decaying else amps[i] * cur
        prev, cur = cur, two_cos * cur - prev
    return out


def note(instrument: str, midi: int, gate: float, timbre: dict, rng: np.random.Generator):
    """One note of ``instrument`` held for ``gate`` seconds (plus its natural ring-out)."""
    freq = midi_hz(midi)
    k = np.arange(1, 21, dtype=np.float64)
    if instrument == "piano":
        n = num_samples(min(gate + 0.6, 2.5))
        tau0 = timbre["tau"] * (261.6 / freq) ** 0.3
        amps = k ** -timbre["slope"]
        x = _partials(freq, n, amps[:12], tau0 / (1.0 + 0.5 * (k[:12] - 1)), None)
        hammer = highpass(rng.standard_normal(num_samples(0.01)), 2000.0) * 0.05
        x[: len(hammer)] += hammer
        env = exp_decay(n, 10.0, 0.004)
        env[num_samples(gate) :] *= np.exp(-np.arange(n - num_samples(gate)) / (0.12 * SR))
        return x * env
    if instrument == "guitar":
        n = num_samples(min(gate + 0.8, 2.5))
        pos = timbre["pluck"]
        amps = np.abs(np.sin(np.pi * k * pos)) / k
        x = _partials(freq, n, amps, timbre["tau"] / (1.0 + 0.35 * (k - 1)), None)
        return x * exp_decay(n, 10.0, 0.002)
    n = num_samples(gate)
    if instrument == "organ":
        amps = np.zeros(20)
        for ratio, level in zip((1, 2, 3, 4, 6, 8), timbre["drawbars"], strict=True):
            amps[ratio - 1] = level
        trem = 0.03 * np.sin(2 * np.pi * 6.0 * np.arange(n) / SR)
        x = _partials(freq, n, amps, np.full(20, np.inf), None) * (1.0 + trem)
        return x * adsr(n, 0.015, 0.02, 0.9, 0.04)
    t = np.arange(n) / SR
    if instrument == "flute":
        vib = 0.005 * np.sin(2 * np.pi * timbre["vib_rate"] * t) * np.clip(t / 0.25, 0, 1)
        x = _partials(freq, n, np.array([1.0, 0.22, 0.07]), np.full(3, np.inf), vib)
        breath = formant_filter(rng.standard_normal(n), [freq, 2 * freq], [0.08 * freq] * 2)
        x = x + timbre["breath"] * breath / (np.std(breath) + 1e-9)
        return x * adsr(n, 0.06, 0.05, 0.85, 0.08)
    if instrument == "violin":
        vib = 0.006 * np.sin(2 * np.pi * timbre["vib_rate"] * t) * np.clip((t - 0.1) / 0.2, 0, 1)
        x = _partials(freq, n, 1.0 / k, np.full(20, np.inf), vib)
        return x * adsr(n, 0.08, 0.05, 0.9, 0.1)
    raise ValueError(f"unknown instrument {instrument!r}")


def _timbre(instrument: str, rng: np.random.Generator) -> dict:
    """Per-clip random timbre parameters, so an instrument is a family of sounds."""
    if instrument == "piano":
        return {"tau": rng.uniform(0.5, 1.1), "slope": rng.uniform(1.2, 2.0)}
    if instrument == "guitar":
        return {"tau": rng.uniform(0.5, 1.0), "pluck": rng.uniform(0.1, 0.3)}
    if instrument == "organ":
        return {"drawbars": rng.uniform(0.1, 1.0, size=6) * np.array([1, 1, 0.7, 0.6, 0.4, 0.3])}
    if instrument == "flute":
        return {"vib_rate": rng.uniform(4.5, 5.5), "breath": rng.uniform(0.04, 0.12)}
    return {"vib_rate": rng.uniform(5.5, 6.5)}


def _events(texture: str, mode: str, tonic: int, beats: int, rng: np.random.Generator):
    """List of ``(beat, [midi notes], length_in_beats)`` for a texture, all on-beat."""
    prog = PROGRESSIONS[int(rng.integers(len(PROGRESSIONS)))]
    events: list[tuple[int, list[int], int]] = []
    if texture == "scale":
        up = list(range(0, 8))
        degrees = (up + up[-2::-1]) if rng.random() < 0.7 else (up[::-1] + up[1:])
        for b in range(beats):
            events.append((b, [degree_note(tonic, mode, degrees[b % len(degrees)])], 1))
    elif texture == "melody":
        lengths: list[int] = []
        while sum(lengths) < beats:
            two = rng.random() < 0.15 and sum(lengths) + 2 <= beats
            lengths.append(2 if two else 1)
        degrees = [0, 2, 4] if rng.random() < 0.5 else [4, 2, 0]
        while len(degrees) < len(lengths):
            step = int(rng.choice([-2, -1, -1, 1, 1, 2, 0]))
            degrees.append(int(np.clip(degrees[-1] + step, -3, 9)))
        degrees = degrees[: len(lengths)]
        if len(degrees) >= 5:
            degrees[-2:] = [2, 0]  # third then tonic: a cadence that states the mode
        starts = np.cumsum([0] + lengths[:-1])
        for b, d, length in zip(starts, degrees, lengths, strict=True):
            events.append((int(b), [degree_note(tonic, mode, d)], length))
    else:
        per_chord = 4 if texture == "arpeggios" else int(rng.choice([1, 2]))
        pattern = (0, 2, 4, 2) if rng.random() < 0.5 else (0, 2, 4, 7)
        for b in range(beats):
            root = prog[(b // per_chord) % len(prog)]
            triad = [degree_note(tonic, mode, root + i) for i in (0, 2, 4)]
            if texture == "arpeggios":
                events.append((b, [degree_note(tonic, mode, root + pattern[b % 4])], 1))
            else:
                events.append((b, triad, 1))
    if texture in ("melody", "scale") and events:  # open and close on the tonic triad
        triad = [degree_note(tonic, mode, d) for d in (0, 2, 4)]
        for i in {0, len(events) - 1}:
            b, notes, length = events[i]
            events[i] = (b, sorted(set(notes + triad)), length)
    return events, prog


def _drum(kind: str, rng: np.random.Generator) -> np.ndarray:
    """A kick, snare or hi-hat hit."""
    if kind == "kick":
        n = num_samples(0.25)
        t = np.arange(n) / SR
        freq = 50.0 + 90.0 * np.exp(-t / 0.03)
        return np.sin(2 * np.pi * np.cumsum(freq) / SR) * exp_decay(n, 0.12, 0.002)
    if kind == "snare":
        n = num_samples(0.2)
        body = np.sin(2 * np.pi * 185.0 * np.arange(n) / SR) * 0.4
        return (highpass(rng.standard_normal(n), 1200.0) * 0.5 + body) * exp_decay(n, 0.06)
    n = num_samples(0.06)
    return highpass(rng.standard_normal(n), 6000.0) * 0.3 * exp_decay(n, 0.02, 0.001)


def synth_music(
    rng: np.random.Generator, instrument: str, mode: str, tempo: str
) -> tuple[np.ndarray, dict]:
    """One 3-8 s music clip (16 kHz) and its metadata."""
    key = int(rng.integers(12))
    tonic = REGISTER[instrument] + key
    bpm = int(rng.integers(TEMPO_BPM[tempo][0], TEMPO_BPM[tempo][1] + 1))
    beat = 60.0 / bpm
    texture = TEXTURES[int(rng.integers(len(TEXTURES)))]
    offset = rng.uniform(0.05, 0.3)
    target = rng.uniform(3.0, MAX_DUR - 0.5)
    beats = max(3, int((target - offset) / beat))
    n = num_samples(min(MAX_DUR, offset + beats * beat + rng.uniform(0.3, 0.6)))
    legato = float(rng.uniform(0.5, 0.95))
    timbre = _timbre(instrument, rng)
    events, prog = _events(texture, mode, tonic, beats, rng)

    lead = np.zeros(n)
    for b, notes, length in events:
        start = num_samples(offset + b * beat)
        for midi in notes:
            add_at(
                lead,
                note(instrument, midi, length * beat * legato, timbre, rng) / len(notes) ** 0.5,
                start,
            )
    if instrument == "violin":  # wooden body resonances
        lead = formant_filter(lead, [280.0, 1000.0, 2600.0, 4000.0], [150.0, 500.0, 900.0, 1500.0])
    lead /= np.max(np.abs(lead)) + 1e-9

    mix = lead
    has_bass = bool(rng.random() < 0.35) and texture != "scale"
    has_drums = bool(rng.random() < 0.35)
    if has_bass:
        bass = np.zeros(n)
        for bar in range(0, beats, 2):
            root = prog[(bar // (4 if texture == "arpeggios" else 2)) % len(prog)]
            freq = midi_hz(degree_note(36 + key, mode, root))
            m = num_samples(min(2 * beat * 0.9, 1.5))
            tone = np.sin(2 * np.pi * freq * np.arange(m) / SR)
            tone += 0.3 * np.sin(4 * np.pi * freq * np.arange(m) / SR)
            add_at(bass, tone * exp_decay(m, 0.6, 0.01), num_samples(offset + bar * beat))
        mix = mix + 0.35 * bass
    if has_drums:
        hits = {kind: _drum(kind, rng) for kind in ("kick", "snare", "hat")}
        drums = np.zeros(n)
        for b in range(beats):
            start = num_samples(offset + b * beat)
            add_at(drums, hits["kick" if b % 2 == 0 else "snare"], start)
            add_at(drums, hits["hat"], start)
        mix = mix + 0.35 * drums
    color = ("white", "pink", "brown")[int(rng.integers(3))]
    mix = fade(mix_snr(mix, colored_noise(rng, n, color), float(rng.uniform(30.0, 45.0))))
    meta = {
        "instrument": instrument,
        "mode": mode,
        "tempo": tempo,
        "bpm": bpm,
        "key": KEY_NAMES[key],
        "texture": texture,
        "bass": has_bass,
        "drums": has_drums,
        "legato": legato > 0.8,
    }
    return mix, meta
