"""Caption templates for the demo corpus's sound-event and mixed clips."""

from __future__ import annotations

import numpy as np

from toolkit.data.prepare.demo.captions import (
    GENDER_PERSON,
    INSTRUMENT_NAMES,
    MOOD,
    RATE_ADV,
    TEMPO_ADJ,
    art,
    fill,
    pick,
)

COUNT_WORD = {"one": ("one", "a single"), "two": ("two",), "three": ("three",), "four": ("four",)}
TIMES = {
    "one": ("once", "one time", "a single time"),
    "two": ("twice", "two times"),
    "three": ("three times",),
    "four": ("four times",),
}
# Countable events: tags, singular nouns, plural nouns (parallel), clauses.
COUNTABLE_WORDS = {
    "beep": (
        ("beep", "alarm beep", "electronic beep"),
        ("beep", "alarm beep"),
        ("beeps", "alarm beeps"),
        ("an alarm beeps", "a device beeps", "an electronic alarm beeps"),
    ),
    "water drop": (
        ("water drop", "dripping water", "drip"),
        ("water drop", "drip", "drop of water"),
        ("water drops", "drips", "drops of water"),
        ("water drips", "a drop of water falls", "a water drop plinks"),
    ),
    "dog bark": (
        ("dog bark", "dog barking", "barking dog"),
        ("dog bark", "bark"),
        ("dog barks", "barks"),
        ("a dog barks", "a small dog barks"),
    ),
    "knock": (
        ("knock", "door knock", "knocking"),
        ("knock", "knock on a door"),
        ("knocks", "knocks on a door"),
        ("someone knocks on a door", "someone raps on a wooden door", "someone knocks on wood"),
    ),
    "bell": (
        ("bell", "chime", "bell ringing"),
        ("bell strike", "chime"),
        ("bell strikes", "chimes"),
        ("a bell rings", "a bell chimes", "a small bell is struck"),
    ),
}
# Continuous events: tags and, per style, (clauses, noun phrases).
CONTINUOUS_WORDS = {
    "siren": (("siren", "emergency siren", "police siren"), {
        "wailing": (("a siren wails", "an emergency siren wails up and down",
                     "a siren rises and falls"), ("a wailing siren", "an emergency siren wailing")),
        "yelping": (("a siren yelps rapidly", "a fast warbling siren sounds",
                     "an emergency siren yelps"), ("a yelping siren", "a rapidly warbling siren")),
    }),
    "engine": (("engine", "motor", "engine hum"), {
        "idling": (("an engine idles", "a motor hums at low revs", "an engine rumbles steadily"),
                   ("an idling engine", "a low engine hum")),
        "revving": (("an engine runs at high revs", "a motor drones loudly",
                     "an engine hums and revs"), ("a revving engine", "a fast-running motor")),
    }),
    "rain": (("rain", "rainfall", "raindrops"), {
        "heavy": (("heavy rain pours down", "rain falls hard", "a downpour patters"),
                  ("heavy rain", "a heavy downpour")),
        "light": (("light rain falls", "rain patters gently", "a light shower drizzles"),
                  ("light rain", "a gentle drizzle")),
    }),
    "footsteps": (("footsteps", "walking", "steps"), {
        "brisk": (("someone walks briskly", "quick footsteps pass by", "footsteps hurry along"),
                  ("brisk footsteps", "quick footsteps")),
        "slow": (("someone walks slowly", "slow footsteps pass by", "footsteps plod along"),
                 ("slow footsteps", "unhurried footsteps")),
    }),
    "wind": (("wind", "wind noise", "blowing wind"), {
        "gusty": (("wind blows in gusts", "a gusty wind howls", "wind whistles and gusts"),
                  ("gusty wind", "howling wind")),
    }),
}  # fmt: skip
NOISE_WORD = {
    "white": ("hiss", "static", "white noise"),
    "pink": ("rushing noise", "pink noise", "whooshing noise"),
    "brown": ("rumble", "rumbling noise", "brown noise"),
}
COUNTABLE_TEMPLATES = {
    "tags": (
        "{tag}, {count_np}, {ntag}",
        "sound effect, {tag}, {times}",
        "{count_np}, {tag}, background noise",
        "{tag}, count: {count}, {ntag}",
        "{ntag}, {count_np}, {tag}",
    ),
    "short": (
        "{clause} {times}.",
        "{count_np} over {noise}.",
        "{clause} {times} in a noisy setting.",
        "The sound of {count_np}.",
        "{count_np}, heard over {noise}.",
    ),
    "detailed": (
        "{clause} {times} over {noise}, each {sing} clearly separated.",
        "{count_np} can be heard against {noise}, {count} in total.",
        "In this clip {clause} exactly {times}, while {noise} continues.",
        "A recording with {count_np} in total; {noise} is audible throughout.",
        "Over {noise}, {clause} {times} and then the clip falls quiet.",
    ),
}
CONTINUOUS_TEMPLATES = {
    "tags": (
        "{tag}, {style}, {ntag}",
        "sound effect, {tag}, {ntag}",
        "{style} {tag}, background noise",
        "{tag}, continuous sound, {ntag}",
        "{ntag}, {tag}, {style}",
    ),
    "short": (
        "{clause}.",
        "{clause} over {noise}.",
        "The sound of {np}.",
        "{np} with {noise}.",
        "{clause} throughout the clip.",
    ),
    "detailed": (
        "{clause} over {noise} for the whole clip.",
        "Throughout the recording {clause}, with {noise} underneath.",
        "{np} fills the clip while {noise} continues.",
        "A continuous recording in which {clause}; there is also {noise}.",
        "{clause} for the whole clip, against {noise}, with no separate events.",
    ),
}


def _noise(meta: dict, rng: np.random.Generator) -> tuple[str, str]:
    """(description, tag) of the background noise from its colour and SNR."""
    snr = meta["snr"]
    level = ("loud", "heavy", "strong") if snr < 8 else ("steady", "noticeable", "moderate")
    level = ("faint", "soft", "quiet") if snr > 14 else level
    word = pick(rng, NOISE_WORD[meta["noise_color"]])
    return f"{pick(rng, level)} background {word}", pick(rng, NOISE_WORD[meta["noise_color"]])


def sound_fields(meta: dict, rng: np.random.Generator) -> dict[str, str]:
    """Template fields for a sound clip's metadata."""
    noise, ntag = _noise(meta, rng)
    event, count = meta["event"], meta.get("count")
    if count is None:
        tags, styles = CONTINUOUS_WORDS[event]
        clauses, nps = styles[meta["style"]]
        return {
            "tag": pick(rng, tags),
            "style": meta["style"],
            "clause": pick(rng, clauses),
            "np": pick(rng, nps),
            "noise": noise,
            "ntag": ntag,
        }
    tags, sing, plural, clauses = COUNTABLE_WORDS[event]
    k = int(rng.integers(len(sing)))
    nouns = sing if count == "one" else plural
    return {
        "tag": pick(rng, tags),
        "sing": sing[k],
        "count": count,
        "count_np": f"{pick(rng, COUNT_WORD[count])} {nouns[k]}",
        "times": pick(rng, TIMES[count]),
        "clause": pick(rng, clauses),
        "noise": noise,
        "ntag": ntag,
    }


def sound_captions(meta: dict, rng: np.random.Generator) -> dict[str, str]:
    """One caption per style (tags, short, detailed) for a sound-event clip."""
    fields = sound_fields(meta, rng)
    templates = CONTINUOUS_TEMPLATES if meta.get("count") is None else COUNTABLE_TEMPLATES
    return {style: fill(rng, tpl, fields, style) for style, tpl in templates.items()}


# ----------------------------------------------------------------------------- mix
MIX_TEMPLATES = {
    "tags": (
        "{a_tags}, {b_tags}, mixture",
        "mix, {a_tags}, {b_tags}",
        "{b_tags}, {a_tags}, overlapping sounds",
        "{a_tags}, {b_tags}, background",
        "layered audio, {a_tags}, {b_tags}",
    ),
    "short": (
        "{a} while {b}.",
        "{a_np} with {b_np} in the background.",
        "{b} as {a}.",
        "{a_np} mixed with {b_np}.",
        "{a}; meanwhile {b}.",
    ),
    "detailed": (
        "{a} while {b} in the background; the two sounds overlap.",
        "A mixture of two sources: {a_np} and {b_np}.",
        "In the foreground {a}, and behind it {b}.",
        "{a_np} is heard together with {b_np}, over faint noise.",
        "Two layers: {a_np} on top, with {b_np} underneath.",
    ),
}


def _speech_phrases(meta: dict, rng: np.random.Generator) -> tuple[str, str, str]:
    """(clause, noun phrase, tags) naming a speech component."""
    person, lang = art(pick(rng, GENDER_PERSON[meta["gender"]])), meta["language"].capitalize()
    clause = pick(rng, (f"{person} speaks {lang}", f"{person} talks in {lang}",
                        f"{person} speaks {lang} {pick(rng, RATE_ADV[meta['rate']])}"))  # fmt: skip
    np_ = pick(rng, (f"{person} speaking {lang}", f"{lang} speech from {person}"))
    return clause, np_, f"speech, {meta['language']}, {meta['gender']} voice"


def _music_phrases(meta: dict, rng: np.random.Generator) -> tuple[str, str, str]:
    """(clause, noun phrase, tags) naming a background music component."""
    instr = pick(rng, INSTRUMENT_NAMES[meta["instrument"]])
    tadj, mood = pick(rng, TEMPO_ADJ[meta["tempo"]]), pick(rng, MOOD[meta["mode"]])
    clause = pick(
        rng,
        (
            f"soft {instr} music plays",
            f"{art(instr)} plays quietly",
            f"{art(tadj)} {instr} tune plays",
            f"{art(mood)} {instr} melody plays",
        ),
    )
    np_ = pick(rng, (f"soft {instr} music", f"a quiet {instr} melody", f"{art(tadj)} {instr} tune"))
    return clause, np_, f"music, {instr}"


def _sound_phrases(meta: dict, rng: np.random.Generator) -> tuple[str, str, str]:
    """(clause, noun phrase, tags) naming a sound-event component."""
    fields = sound_fields(meta, rng)
    if meta.get("count") is None:
        return fields["clause"], fields["np"], fields["tag"]
    return f"{fields['clause']} {fields['times']}", fields["count_np"], fields["tag"]


PHRASES = {"speech": _speech_phrases, "music": _music_phrases, "sound": _sound_phrases}


def mix_captions(
    fg_domain: str, fg_meta: dict, bg_domain: str, bg_meta: dict, rng: np.random.Generator
) -> dict[str, str]:
    """One caption per style (tags, short, detailed) naming both components of a mixed clip."""
    a, a_np, a_tags = PHRASES[fg_domain](fg_meta, rng)
    b, b_np, b_tags = PHRASES[bg_domain](bg_meta, rng)
    fields = {"a": a, "b": b, "a_np": a_np, "b_np": b_np, "a_tags": a_tags, "b_tags": b_tags}
    return {style: fill(rng, tpl, fields, style) for style, tpl in MIX_TEMPLATES.items()}
