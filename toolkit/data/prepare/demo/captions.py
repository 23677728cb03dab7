"""Caption templates for the demo corpus.

Each ``*_captions`` function returns one caption per available style (``tags``, ``short``,
``detailed`` and, for speech, ``speaking_style``), each drawn from at least five paraphrase
templates filled with random synonyms. Every caption states every probe attribute of its clip.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    """A uniformly random element of ``options``."""
    return options[int(rng.integers(len(options)))]


def art(word: str) -> str:
    """``word`` with its indefinite article ("an upbeat", "a piano")."""
    return ("an " if word[:1].lower() in "aeiou" else "a ") + word


def cap(text: str) -> str:
    """Upper-case the first character."""
    return text[:1].upper() + text[1:]


def fill(
    rng: np.random.Generator, templates: Sequence[str], fields: dict[str, str], style: str
) -> str:
    """Format a random template with ``fields``; sentences are capitalised, tag lists lower-case."""
    text = pick(rng, templates).format(**fields)
    return text.lower() if style == "tags" else cap(text)


def select_captions(
    options: dict[str, str], rng: np.random.Generator, max_n: int = 4
) -> tuple[list[str], list[str]]:
    """Keep a random subset of 2..max_n styles in random order; returns (captions, styles)."""
    styles = list(options)
    k = int(rng.integers(2, min(max_n, len(styles)) + 1))
    order = rng.permutation(len(styles))[:k]
    return [options[styles[i]] for i in order], [styles[i] for i in order]


# ----------------------------------------------------------------------------- speech
GENDER_NOUN = {
    "male": ("man", "male speaker", "male voice", "man's voice"),
    "female": ("woman", "female speaker", "female voice", "woman's voice"),
}
GENDER_PERSON = {
    "male": ("man", "male speaker", "male talker"),
    "female": ("woman", "female speaker", "female talker"),
}
GENDER_ADJ = {"male": ("male", "masculine"), "female": ("female", "feminine")}
RATE_ADV = {
    "slow": ("slowly", "at a slow pace", "at a leisurely pace", "unhurriedly", "deliberately"),
    "medium": ("at a moderate pace", "at a normal speed", "at an even pace", "at a medium rate"),
    "fast": ("quickly", "rapidly", "at a brisk pace", "very fast", "at a fast pace"),
}
RATE_ADJ = {
    "slow": ("slow", "slow-paced", "unhurried", "leisurely"),
    "medium": ("moderately paced", "medium-paced", "normal-paced", "steady-paced"),
    "fast": ("fast", "rapid", "fast-paced", "quick"),
}
RATE_TAG = {
    "slow": ("slow", "slow speech", "slow pace"),
    "medium": ("medium pace", "moderate speed", "normal rate"),
    "fast": ("fast", "fast speech", "rapid pace"),
}
TONE = {
    "slow": ("calm", "measured", "relaxed", "gentle"),
    "medium": ("even", "conversational", "neutral", "matter-of-fact"),
    "fast": ("lively", "energetic", "urgent", "animated"),
}
SPEECH_TEMPLATES = {
    "tags": (
        "speech, {lang}, {gadj} voice, {rtag}",
        "{lang} speech, {gadj} speaker, {rtag}",
        "spoken {lang}, {rtag}, {gadj}, synthetic voice",
        "{gadj} voice, {lang}, {rtag}, talking",
        "voice, {lang} language, {gadj} speaker, {rtag}, {pitch}",
        "{rtag}, {gadj} {lang} speech, {pitch} voice",
    ),
    "short": (
        "{a_person} speaks {Lang} {radv}.",
        "{Lang} speech by {a_person}, spoken {radv}.",
        "{a_gadj} voice talks {radv} in {Lang}.",
        "Someone with {a_gadj} voice speaks {Lang} {radv}.",
        "{a_person} talking in {Lang} {radv}.",
        "{a_radj} {Lang} sentence read by {a_person}.",
    ),
    "detailed": (
        "{a_gadj} speaker talks in {Lang} {radv} with {a_pitch} voice over {noise}.",
        "{a_person} says {nsent} in {Lang}; the delivery is {radj} and the voice is {pitch}, "
        "with {noise} in the background.",
        "In this recording, {a_person} with {a_pitch} {gadj} voice speaks {Lang} {radv}, "
        "over {noise}.",
        "{Lang} speech from {a_person}, spoken {radv} in {a_tone} tone; {noise} can be heard "
        "behind the {pitch} voice.",
        "A synthetic-sounding {gadj} voice reads {nsent} aloud in {Lang} {radv}, against {noise}.",
    ),
    "speaking_style": (
        "{a_radj} {gadj} voice speaking {Lang} with {a_tone} tone.",
        "{a_tone} {gadj} voice speaks {Lang} {radv}.",
        "{Lang}, spoken by {a_person} in {a_tone}, {radj} manner.",
        "{a_person} with {a_pitch} voice talks {radv} in {Lang}, sounding {tone}.",
        "{radj} and {tone}: {a_gadj} speaker delivering {Lang} speech.",
        "Speaking style: {radj}, {tone}, {gadj}, {pitch} voice, in {Lang}.",
    ),
}


def _pitch_words(pitch: int) -> tuple[str, ...]:
    """Adjectives describing an espeak-ng pitch setting (0-99)."""
    if pitch < 43:
        return ("deep", "low-pitched", "low")
    if pitch > 57:
        return ("bright", "high-pitched", "slightly high-pitched")
    return ("mid-pitched", "moderately pitched", "natural-sounding")


def _quiet_noise(rng: np.random.Generator, snr: float) -> str:
    """Description of the faint background noise under speech."""
    if snr > 27:
        return pick(
            rng, ("faint room noise", "a very quiet background hiss", "an almost silent background")
        )
    return pick(rng, ("soft background noise", "a light hiss", "faint steady noise"))


def speech_fields(meta: dict, rng: np.random.Generator) -> dict[str, str]:
    """Template fields for a speech clip's metadata."""
    g, r = meta["gender"], meta["rate"]
    person, gadj, radj = (
        pick(rng, GENDER_PERSON[g]),
        pick(rng, GENDER_ADJ[g]),
        pick(rng, RATE_ADJ[r]),
    )
    pitch, tone = pick(rng, _pitch_words(meta["pitch"])), pick(rng, TONE[r])
    return {
        "lang": meta["language"],
        "Lang": meta["language"].capitalize(),
        "gadj": gadj,
        "a_gadj": art(gadj),
        "person": person,
        "a_person": art(person),
        "gnoun": pick(rng, GENDER_NOUN[g]),
        "radv": pick(rng, RATE_ADV[r]),
        "radj": radj,
        "a_radj": art(radj),
        "rtag": pick(rng, RATE_TAG[r]),
        "tone": tone,
        "a_tone": art(tone),
        "pitch": pitch,
        "a_pitch": art(pitch),
        "noise": _quiet_noise(rng, meta["snr"]),
        "nsent": "two short sentences" if meta["text"].count(".") > 1 else "a short sentence",
    }


def speech_captions(meta: dict, rng: np.random.Generator) -> dict[str, str]:
    """One caption per style (tags, short, detailed, speaking_style) for a speech clip."""
    fields = speech_fields(meta, rng)
    return {style: fill(rng, tpl, fields, style) for style, tpl in SPEECH_TEMPLATES.items()}


# ----------------------------------------------------------------------------- music
INSTRUMENT_NAMES = {
    "piano": ("piano", "acoustic piano", "grand piano"),
    "organ": ("organ", "electric organ", "drawbar organ"),
    "guitar": ("guitar", "acoustic guitar", "plucked guitar", "nylon-string guitar"),
    "flute": ("flute", "breathy flute", "concert flute"),
    "violin": ("violin", "bowed violin", "fiddle"),
}
MODE_PHRASE = {
    "major": ("in a major key", "in a happy-sounding major key", "in a bright major key",
              "in a cheerful major mode"),
    "minor": ("in a minor key", "in a melancholic minor key", "in a sad-sounding minor key",
              "in a dark minor mode"),
}  # fmt: skip
MODE_PLAIN = {
    "major": ("in a major key", "in major", "in a major tonality"),
    "minor": ("in a minor key", "in minor", "in a minor tonality"),
}
MODE_TAG = {
    "major": ("major", "major key", "major mode"),
    "minor": ("minor", "minor key", "minor mode"),
}
MOOD = {
    "major": ("happy", "cheerful", "bright", "uplifting"),
    "minor": ("melancholic", "sad", "somber", "wistful"),
}
TEMPO_ADJ = {
    "slow": ("slow", "unhurried", "leisurely", "slow-moving"),
    "medium": ("moderate", "mid-tempo", "medium-tempo", "steady"),
    "fast": ("fast", "upbeat", "quick", "brisk", "lively"),
}
TEMPO_PHRASE = {
    "slow": ("at a slow tempo", "at a slow pace", "slowly"),
    "medium": ("at a moderate tempo", "at a medium tempo", "at a walking pace"),
    "fast": ("at a fast tempo", "at a quick tempo", "at a brisk tempo", "quickly"),
}
TEMPO_TAG = {
    "slow": ("slow tempo", "slow"),
    "medium": ("medium tempo", "moderate tempo"),
    "fast": ("fast tempo", "upbeat", "fast"),
}
TEXTURE_NP = {
    "melody": ("a melody", "a simple tune", "a melodic line"),
    "arpeggios": ("arpeggios", "broken chords", "arpeggiated chords"),
    "chords": ("a chord progression", "block chords", "repeated chords"),
    "scale": ("a scale", "a scale run", "an up-and-down scale"),
}
ACCOMPANIMENT = {
    (False, False): ("",),
    (False, True): (", accompanied by a simple drum beat", ", with drums keeping the beat"),
    (True, False): (", over a soft bass line", ", with a bass line underneath"),
    (True, True): (", with bass and drums", ", backed by bass and a drum beat"),
}
MUSIC_TEMPLATES = {
    "tags": (
        "music, {itag}, {mtag}, {ttag}",
        "{itag}, {mood}, {mtag}, {ttag}, instrumental",
        "instrumental, {ttag}, {itag}, {mtag}",
        "{mtag}, {itag} music, {ttag}, {mood}",
        "{ttag}, {mood}, {mtag}, {itag} lead",
    ),
    "short": (
        "{a_tadj} {instr} piece {mphrase}.",
        "{a_mood} {instr} tune {mplain}, played {tphrase}.",
        "{tadj} {instr} music {mphrase}.",
        "{a_instr} plays {texture} {tphrase} {mphrase}.",
        "{a_tadj}, {mood} {instr} piece {mplain}.",
    ),
    "detailed": (
        "{a_instr} plays {texture} in {key} {mode} {tphrase} (about {bpm} BPM), giving "
        "{a_mood} feel{acc}.",
        "This {tadj} instrumental features {a_instr} playing {texture} in the key of {key} "
        "{mode}; the {mode} tonality sounds {mood}{acc}.",
        "{texture} on {a_instr} in {key} {mode} at around {bpm} beats per minute: "
        "{a_tadj}, {mood} piece{acc}.",
        "{a_mood} {mode}-key piece in {key}, performed on {a_instr} {tphrase}{acc}.",
        "{a_instr} performs {texture} in {key} {mode}; the tempo is {tadj} (roughly {bpm} BPM) "
        "and the mood is {mood}{acc}.",
    ),
}


def music_fields(meta: dict, rng: np.random.Generator) -> dict[str, str]:
    """Template fields for a music clip's metadata."""
    mode, tempo = meta["mode"], meta["tempo"]
    instr, tadj, mood = (
        pick(rng, INSTRUMENT_NAMES[meta["instrument"]]),
        pick(rng, TEMPO_ADJ[tempo]),
        pick(rng, MOOD[mode]),
    )
    return {
        "instr": instr,
        "a_instr": art(instr),
        "itag": pick(rng, INSTRUMENT_NAMES[meta["instrument"]][:2]),
        "mode": mode,
        "mtag": pick(rng, MODE_TAG[mode]),
        "mphrase": pick(rng, MODE_PHRASE[mode]),
        "mplain": pick(rng, MODE_PLAIN[mode]),
        "mood": mood,
        "a_mood": art(mood),
        "tadj": tadj,
        "a_tadj": art(tadj),
        "tphrase": pick(rng, TEMPO_PHRASE[tempo]),
        "ttag": pick(rng, TEMPO_TAG[tempo]),
        "texture": pick(rng, TEXTURE_NP[meta["texture"]]),
        "key": meta["key"],
        "bpm": str(meta["bpm"]),
        "acc": pick(rng, ACCOMPANIMENT[(meta["bass"], meta["drums"])]),
    }


def music_captions(meta: dict, rng: np.random.Generator) -> dict[str, str]:
    """One caption per style (tags, short, detailed) for a music clip."""
    fields = music_fields(meta, rng)
    return {style: fill(rng, tpl, fields, style) for style, tpl in MUSIC_TEMPLATES.items()}
