"""Speech clips for the demo corpus: espeak-ng phrases in five languages, two genders, three rates.

Sentences are built combinatorially (subject, verb, object, adverbial: 6,400 per language; clips
say one or two sentences). Each
split draws from a disjoint subset of the combinations, so no sentence is shared across splits.
"""

from __future__ import annotations

import shutil
import struct
import subprocess

import numpy as np

from toolkit.data.prepare.demo.synth import (
    MAX_DUR,
    MIN_DUR,
    NOISE_COLORS,
    colored_noise,
    fade,
    fit_length,
    mix_snr,
    num_samples,
    resample,
)

LANGUAGES = ("english", "german", "french", "spanish", "italian")
RATES = ("slow", "medium", "fast")
GENDERS = ("male", "female")

ESPEAK_VOICE = {"english": "en", "german": "de", "french": "fr", "spanish": "es", "italian": "it"}
VARIANTS = {
    "male": ("m1", "m2", "m3", "m4", "m5", "m6", "m7"),
    "female": ("f1", "f2", "f3", "f4", "f5"),
}
RATE_WPM = {"slow": (100, 120), "medium": (150, 170), "fast": (215, 245)}
# Residues of the sentence-combination index (mod 5) reserved for each split.
SPLIT_RESIDUES = {"train": (0, 1, 2), "dev": (3,), "test": (4,)}

_S, _V, _O, _T = range(4)
WORDS: dict[str, tuple[tuple[str, ...], ...]] = {
    "english": (
        ("The teacher", "My neighbour", "A young doctor", "The old farmer", "Our captain",
         "The little girl", "His brother", "The new student", "A tired driver", "The baker"),
        ("reads", "buys", "finds", "carries", "paints", "opens", "cleans", "sells", "repairs",
         "brings"),
        ("a red book", "the wooden door", "a small boat", "the morning paper", "an old guitar",
         "a basket of apples", "the blue window", "a heavy box"),
        ("every morning", "before dinner", "in the garden", "near the river", "after school",
         "on Sunday", "with great care", "at the station"),
    ),
    "german": (
        ("Der Lehrer", "Meine Nachbarin", "Ein junger Arzt", "Der alte Bauer", "Unser Kapitän",
         "Das kleine Mädchen", "Sein Bruder", "Die neue Studentin", "Ein müder Fahrer",
         "Der Bäcker"),
        ("liest", "kauft", "findet", "trägt", "malt", "öffnet", "putzt", "verkauft", "repariert",
         "bringt"),
        ("ein rotes Buch", "die hölzerne Tür", "ein kleines Boot", "die Morgenzeitung",
         "eine alte Gitarre", "einen Korb mit Äpfeln", "das blaue Fenster", "eine schwere Kiste"),
        ("jeden Morgen", "vor dem Abendessen", "im Garten", "am Fluss", "nach der Schule",
         "am Sonntag", "mit großer Sorgfalt", "am Bahnhof"),
    ),
    "french": (
        ("Le professeur", "Ma voisine", "Un jeune médecin", "Le vieux fermier",
         "Notre capitaine", "La petite fille", "Son frère", "La nouvelle étudiante",
         "Un chauffeur fatigué", "Le boulanger"),
        ("lit", "achète", "trouve", "porte", "peint", "ouvre", "nettoie", "vend", "répare",
         "apporte"),
        ("un livre rouge", "la porte en bois", "un petit bateau", "le journal du matin",
         "une vieille guitare", "un panier de pommes", "la fenêtre bleue", "une lourde boîte"),
        ("chaque matin", "avant le dîner", "dans le jardin", "près de la rivière",
         "après l'école", "le dimanche", "avec beaucoup de soin", "à la gare"),
    ),
    "spanish": (
        ("El maestro", "Mi vecina", "Un médico joven", "El viejo granjero", "Nuestro capitán",
         "La niña pequeña", "Su hermano", "La nueva estudiante", "Un conductor cansado",
         "El panadero"),
        ("lee", "compra", "encuentra", "lleva", "pinta", "abre", "limpia", "vende", "repara",
         "trae"),
        ("un libro rojo", "la puerta de madera", "un barco pequeño", "el periódico de la mañana",
         "una guitarra vieja", "una cesta de manzanas", "la ventana azul", "una caja pesada"),
        ("cada mañana", "antes de la cena", "en el jardín", "cerca del río",
         "después de la escuela", "el domingo", "con mucho cuidado", "en la estación"),
    ),
    "italian": (
        ("Il maestro", "La mia vicina", "Un giovane medico", "Il vecchio contadino",
         "Il nostro capitano", "La bambina", "Suo fratello", "La nuova studentessa",
         "Un autista stanco", "Il fornaio"),
        ("legge", "compra", "trova", "porta", "dipinge", "apre", "pulisce", "vende", "ripara",
         "prende"),
        ("un libro rosso", "la porta di legno", "una piccola barca", "il giornale del mattino",
         "una vecchia chitarra", "un cesto di mele", "la finestra blu", "una scatola pesante"),
        ("ogni mattina", "prima di cena", "in giardino", "vicino al fiume", "dopo la scuola",
         "la domenica", "con molta cura", "alla stazione"),
    ),
}  # fmt: skip


def espeak_available() -> bool:
    """Whether the ``espeak-ng`` binary is on the PATH."""
    return shutil.which("espeak-ng") is not None


def num_sentences(language: str) -> int:
    """Number of distinct sentences the word lists of ``language`` can form."""
    return int(np.prod([len(part) for part in WORDS[language]]))


def make_sentence(language: str, rng: np.random.Generator, split: str) -> str:
    """A random sentence whose combination index belongs to ``split``'s residue class."""
    parts = WORDS[language]
    total = num_sentences(language)
    residues = SPLIT_RESIDUES[split]
    index = int(rng.integers(total // 5)) * 5 + residues[int(rng.integers(len(residues)))]
    words = []
    for part in reversed(parts):
        index, k = divmod(index, len(part))
        words.append(part[k])
    subject, verb, obj, tail = reversed(words)
    return f"{subject} {verb} {obj} {tail}."


def espeak(text: str, voice: str, wpm: int, pitch: int) -> tuple[np.ndarray, int]:
    """Synthesise ``text`` with espeak-ng; returns float samples in [-1, 1] and the sample rate."""
    cmd = ["espeak-ng", "-v", voice, "-s", str(wpm), "-p", str(pitch), "--stdout", text]
    wav = subprocess.run(cmd, capture_output=True, check=True, timeout=60).stdout
    if wav[:4] != b"RIFF" or len(wav) < 44:
        raise RuntimeError(f"espeak-ng returned no WAV data for voice {voice!r}")
    sr = struct.unpack("<I", wav[24:28])[0]
    start = wav.find(b"data", 12) + 8
    body = wav[start : start + (len(wav) - start) // 2 * 2]
    return np.frombuffer(body, dtype="<i2").astype(np.float64) / 32768.0, sr


def trim_silence(x: np.ndarray, threshold_db: float = -45.0) -> np.ndarray:
    """Remove leading/trailing samples below ``threshold_db`` relative to the peak."""
    peak = np.max(np.abs(x)) if len(x) else 0.0
    if peak <= 0.0:
        return x
    active = np.flatnonzero(np.abs(x) > peak * 10.0 ** (threshold_db / 20.0))
    return x[max(0, active[0] - 80) : active[-1] + 80]


def synth_speech(
    rng: np.random.Generator, language: str, rate: str, gender: str, split: str
) -> tuple[np.ndarray, dict]:
    """One 1-8 s speech clip (16 kHz) with faint background noise, plus its metadata."""
    sentences = [make_sentence(language, rng, split)]
    if rng.random() < 0.4:  # two sentences for longer, more varied clips
        sentences.append(make_sentence(language, rng, split))
    variant = VARIANTS[gender][int(rng.integers(len(VARIANTS[gender])))]
    lo, hi = RATE_WPM[rate]
    wpm = int(rng.integers(lo, hi + 1))
    pitch = int(rng.integers(30, 71))
    lead, tail = rng.uniform(0.1, 0.5, size=2)
    max_voice = num_samples(MAX_DUR - lead - tail)
    while True:
        text = " ".join(sentences)
        raw, sr = espeak(text, f"{ESPEAK_VOICE[language]}+{variant}", wpm, pitch)
        voice = trim_silence(resample(raw, sr))
        if len(voice) <= max_voice or len(sentences) == 1:
            break
        sentences.pop()  # too long for one clip: drop the second sentence
    if len(voice) > max_voice:
        voice = fade(voice[:max_voice].copy(), 0.0, 0.08)
    n = min(num_samples(MAX_DUR), max(num_samples(MIN_DUR), len(voice) + num_samples(lead + tail)))
    clip = fit_length(np.concatenate([np.zeros(num_samples(lead)), voice]), n)
    color = NOISE_COLORS[int(rng.integers(len(NOISE_COLORS)))]
    snr = float(rng.uniform(18.0, 35.0))
    clip = mix_snr(clip, colored_noise(rng, n, color), snr)
    meta = {
        "language": language,
        "rate": rate,
        "gender": gender,
        "text": text,
        "wpm": wpm,
        "pitch": pitch,
        "noise_color": color,
        "snr": snr,
    }
    return clip, meta
