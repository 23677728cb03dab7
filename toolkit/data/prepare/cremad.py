"""CREMA-D acted emotional speech (label-only evaluation corpus).

Audio ``AudioWAV/<ActorID>_<Sentence>_<Emotion>_<Level>.wav`` (e.g. ``1001_DFA_ANG_XX.wav``;
91 actors 1001–1091, 12 sentences, 6 emotions, 7,442 clips, 16 kHz mono). The clip list is the
corpus's ``SentenceFilenames.csv`` (column ``Filename``, stems without extension) when present,
else the ``.wav`` files of ``AudioWAV``. ``VideoDemographics.csv`` (``ActorID,Age,Sex,Race,
Ethnicity``) adds ``speech_gender``.

Tasks: ``speech_emotion`` (``anger``, ``disgust``, ``fear``, ``happy``, ``neutral``, ``sad``),
``speech_sentence`` (the sentence spoken, e.g. ``Don't forget a jacket``), ``speech_intensity``
(``low``/``medium``/``high``; only the sentence ``IEO`` is recorded at graded levels, the other
clips have level ``XX`` = unspecified and no ``speech_intensity``) and ``speech_gender``.

There is no official split: actors are ranked by a hash of their id and the first
``round(n * test_fraction)`` go to ``test``, the next ``round(n * dev_fraction)`` to ``dev``,
the rest to ``train`` (speaker-disjoint, deterministic, independent of file order; with the
defaults and 91 actors: 64 / 9 / 18 actors).
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lhotse import CutSet
from lhotse.cut import Cut

from toolkit.data.prepare.common import (
    SPLITS,
    PrepareRun,
    SkipItem,
    Unpack,
    check_fractions,
    find_audio,
    prepare_splits,
    register_corpus,
    whole_file_cut,
)

NAME = "cremad"
EMOTIONS = {
    "ANG": "anger",
    "DIS": "disgust",
    "FEA": "fear",
    "HAP": "happy",
    "NEU": "neutral",
    "SAD": "sad",
}
INTENSITIES = {"LO": "low", "MD": "medium", "HI": "high", "XX": None}
SENTENCES = {
    "IEO": "It's eleven o'clock",
    "TIE": "That is exactly what happened",
    "IOM": "I'm on my way to the meeting",
    "IWW": "I wonder what this is about",
    "TAI": "The airplane is almost full",
    "MTI": "Maybe tomorrow it will be cold",
    "IWL": "I would like a new alarm clock",
    "ITH": "I think I have a doctor's appointment",
    "DFA": "Don't forget a jacket",
    "ITS": "I think I've seen this before",
    "TSI": "The surface is slick",
    "WSI": "We'll stop in a couple of minutes",
}


def parse_name(stem: str) -> dict[str, str] | None:
    """``1001_DFA_ANG_XX`` → ``{actor, sentence, emotion, intensity?}`` labels, None if the name
    does not follow the corpus's scheme."""
    parts = stem.split("_")
    if len(parts) != 4 or not parts[0].isdigit():
        return None
    actor, sent, emo, level = parts
    if sent not in SENTENCES or emo not in EMOTIONS or level not in INTENSITIES:
        return None
    labels = {"actor": actor, "speech_emotion": EMOTIONS[emo], "speech_sentence": SENTENCES[sent]}
    if INTENSITIES[level]:
        labels["speech_intensity"] = INTENSITIES[level]
    return labels


def read_demographics(path: Path) -> dict[str, str]:
    """``{actor id: "male" | "female"}`` from ``VideoDemographics.csv``."""
    out: dict[str, str] = {}
    with open(path, encoding="utf-8-sig", newline="") as f:
        for row in csv.DictReader(f):
            actor = (row.get("ActorID") or "").strip()
            sex = (row.get("Sex") or "").strip().lower()
            if actor and sex in ("male", "female"):
                out[actor] = sex
    return out


def list_stems(root: Path) -> list[str]:
    """Clip stems from ``SentenceFilenames.csv`` (column ``Filename``, else the second column;
    an extension is dropped) or, without that file, from the ``.wav`` files of ``AudioWAV``."""
    listing = root / "SentenceFilenames.csv"
    if listing.is_file():
        with open(listing, encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f)
            header = [h.strip() for h in next(reader, [])]
            col = header.index("Filename") if "Filename" in header else min(1, len(header) - 1)
            stems = (row[col].strip() for row in reader if len(row) > col)
            return [s.rsplit(".", 1)[0] if "." in s else s for s in stems if s]
    audio = root / "AudioWAV"
    if not audio.is_dir():
        raise FileNotFoundError(f"neither SentenceFilenames.csv nor AudioWAV/ in {root}")
    return sorted(p.stem for p in audio.iterdir() if p.suffix.lower() == ".wav")


def _hash(text: str) -> str:
    return hashlib.sha1(f"{NAME}:{text}".encode()).hexdigest()


def actor_splits(actors: list[str], dev_fraction: float, test_fraction: float) -> dict[str, str]:
    """``{actor: split}``: actors ranked by hash; first test, then dev, rest train."""
    ranked = sorted(set(actors), key=_hash)
    n_test = round(len(ranked) * test_fraction)
    n_dev = round(len(ranked) * dev_fraction)
    return {
        a: "test" if k < n_test else "dev" if k < n_test + n_dev else "train"
        for k, a in enumerate(ranked)
    }


def _clip_cut(item: dict[str, Any]) -> Cut:
    if item["labels"] is None:
        raise SkipItem("bad_metadata", f"file name {item['stem']!r} does not parse")
    path = find_audio(item["audio_dir"], item["stem"])
    return whole_file_cut(
        path, item["id"], "speech", NAME, item["labels"], orig_id=item["stem"], split=item["split"]
    )


def _items(
    stems: list[str], split: str, splits: dict[str, str], gender: dict[str, str], audio_dir: str
) -> Iterator[dict[str, Any]]:
    for stem in stems:
        parsed = parse_name(stem)
        actor_split = splits.get(parsed["actor"]) if parsed else "train"  # bad names: in train
        if actor_split != split:
            continue
        labels = None
        if parsed:
            labels = {k: v for k, v in parsed.items() if k != "actor"}
            if parsed["actor"] in gender:
                labels["speech_gender"] = gender[parsed["actor"]]
        yield {
            "id": f"{NAME}_{stem}",
            "stem": stem,
            "labels": labels,
            "split": split,
            "audio_dir": audio_dir,
        }


@register_corpus(NAME)
def prepare_cremad(
    corpus_dir: Path | str,
    output_dir: Path | str,
    dev_fraction: float = 0.1,
    test_fraction: float = 0.2,
    **run: Unpack[PrepareRun],
) -> dict[str, CutSet]:
    """CREMA-D → ``cremad_cuts_{train,dev,test}`` (speaker-disjoint split by actor).

    Args:
        dev_fraction, test_fraction: shares of the actors in ``dev`` / ``test``.
    """
    root = Path(corpus_dir)
    check_fractions(dev_fraction, test_fraction)
    stems = list_stems(root)
    actors = [p["actor"] for p in map(parse_name, stems) if p]
    if not actors:
        raise ValueError(f"no CREMA-D clip names (<actor>_<sentence>_<emotion>_<level>) in {root}")
    splits = actor_splits(actors, dev_fraction, test_fraction)
    demo = root / "VideoDemographics.csv"
    gender = read_demographics(demo) if demo.is_file() else {}
    audio_dir = str(root / "AudioWAV")
    fractions = {"train": 1.0, "dev": dev_fraction, "test": test_fraction}
    return prepare_splits(
        NAME,
        output_dir,
        [split for split in SPLITS if fractions[split] > 0],
        lambda split: _items(stems, split, splits, gender, audio_dir),
        _clip_cut,
        item_id=lambda x: x["stem"],
        **run,
    )
