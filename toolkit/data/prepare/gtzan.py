"""GTZAN (1,000 30 s music excerpts, 10 genres) → cut manifests (label-only evaluation corpus).

Audio ``<genres_dir>/<genre>/<genre>.000NN.<ext>``: ``genres/`` in the original marsyas archive
(``.au``, 22,050 Hz mono 16-bit), ``genres_original/`` (or ``Data/genres_original/``) in the
widely used Kaggle copy (``.wav``). ``jazz.00054.wav`` of the Kaggle copy is corrupt and is
counted as ``unreadable``.

Splits:

* with ``train_list``/``dev_list``/``test_list`` (files with one ``<genre>/<genre>.000NN.wav``
  per line, e.g. the "fault-filtered" artist-disjoint split of Kereliuk, Sturm & Larsen (2015):
  ``train_filtered.txt``/``valid_filtered.txt``/``test_filtered.txt``, 443/197/290 excerpts):
  exactly the listed excerpts (the extension in the list is ignored; files not listed are left
  out; a listed file that is absent is counted as ``missing``);
* otherwise a deterministic stratified split: within each genre the files are ordered by a hash
  of their name and the first ``n * test_fraction`` (rounded half up) go to ``test``, the next
  ``n * dev_fraction`` to ``dev``, the rest to ``train``.

Cut id ``gtzan_<genre>.000NN``, no caption, label ``music_genre`` (the folder name, ``hiphop``
written ``hip hop``).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from lhotse import CutSet
from lhotse.cut import Cut

from toolkit.data.prepare.common import (
    AUDIO_EXTENSIONS,
    SPLITS,
    PrepareRun,
    Unpack,
    check_fractions,
    find_audio,
    prepare_splits,
    register_corpus,
    require_dir,
    require_file,
    whole_file_cut,
)

log = logging.getLogger(__name__)

NAME = "gtzan"
EXTENSIONS = (*AUDIO_EXTENSIONS, ".au")
GENRE_NAMES = {"hiphop": "hip hop"}
GENRES_DIRS = ("genres", "genres_original", "Data/genres_original", "gtzan/genres")


def find_genres_dir(root: Path, genres_dir: str = "") -> Path:
    """The folder holding the genre folders: ``genres_dir`` if given, else the first of
    :data:`GENRES_DIRS` under ``root`` that exists, else ``root`` itself if it has
    ``blues/`` or ``rock/``."""
    if genres_dir:
        return require_dir(root / genres_dir, "GTZAN genres folder")
    for name in GENRES_DIRS:
        if (root / name).is_dir():
            return root / name
    if (root / "blues").is_dir() or (root / "rock").is_dir():
        return root
    raise FileNotFoundError(
        f"no GTZAN genre folders under {root} (tried {', '.join(GENRES_DIRS)}; "
        "see docs/corpora/gtzan.md)"
    )


def _hash(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def stratified_split(
    stems: dict[str, list[str]], dev_fraction: float, test_fraction: float
) -> dict[str, str]:
    """``{genre: [stem, ...]}`` → ``{stem: split}``, the same share of every genre per split."""
    out: dict[str, str] = {}
    for genre in sorted(stems):
        ordered = sorted(stems[genre], key=lambda s: (_hash(s), s))
        n_test = int(len(ordered) * test_fraction + 0.5)
        n_dev = int(len(ordered) * dev_fraction + 0.5)
        for i, stem in enumerate(ordered):
            out[stem] = "test" if i < n_test else "dev" if i < n_test + n_dev else "train"
    return out


def _clip_cut(item: dict[str, Any]) -> Cut:
    """One excerpt → cut with ``music_genre`` (SkipItem on missing/unreadable audio)."""
    genre, stem = item["genre"], item["stem"]
    path = find_audio(Path(item["genres_dir"]) / genre, stem, EXTENSIONS)
    return whole_file_cut(
        path, f"{NAME}_{stem}", "music", NAME, {"music_genre": GENRE_NAMES.get(genre, genre)},
        orig_id=f"{genre}/{stem}", split=item["split"],
    )  # fmt: skip


def _list_items(path: Path, split: str, genres_dir: Path) -> Iterator[dict[str, Any]]:
    """Items of one split list (``<genre>/<genre>.000NN.wav`` or ``<genre>.000NN.wav`` lines)."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            entry = line.strip()
            if not entry or entry.startswith("#"):
                continue
            name = PurePosixPath(entry.replace("\\", "/")).name
            stem = name.rsplit(".", 1)[0] if name.rsplit(".", 1)[-1].isalpha() else name
            genre = stem.split(".", 1)[0]
            yield {"genre": genre, "stem": stem, "split": split, "genres_dir": str(genres_dir)}


def _scan(genres_dir: Path) -> dict[str, list[str]]:
    """``{genre: [file stems]}`` of the audio files on disk."""
    stems: dict[str, list[str]] = {}
    for folder in sorted(p for p in genres_dir.iterdir() if p.is_dir()):
        found = sorted(
            {p.stem for p in folder.iterdir() if p.is_file() and p.suffix.lower() in EXTENSIONS}
        )
        if found:
            stems[folder.name] = found
    return stems


@register_corpus(NAME)
def prepare_gtzan(
    corpus_dir: Path | str,
    output_dir: Path | str,
    genres_dir: str = "",
    train_list: str = "",
    dev_list: str = "",
    test_list: str = "",
    dev_fraction: float = 0.1,
    test_fraction: float = 0.1,
    **run: Unpack[PrepareRun],
) -> dict[str, CutSet]:
    """GTZAN → ``gtzan_cuts_{train,dev,test}`` (label ``music_genre``, no captions).

    Args:
        genres_dir: folder of the genre folders (relative to ``corpus_dir``; ``""`` = find
            ``genres``, ``genres_original`` or ``Data/genres_original``).
        train_list, dev_list, test_list: split list files (relative to ``corpus_dir`` unless
            absolute), all three or none; none → stratified split.
        dev_fraction, test_fraction: shares per genre of the stratified split.
    """
    root = Path(corpus_dir)
    genres = find_genres_dir(root, genres_dir)
    lists = {"train": train_list, "dev": dev_list, "test": test_list}
    given = {s: v for s, v in lists.items() if v}
    items: dict[str, Iterator[dict[str, Any]] | list[dict[str, Any]]]
    if given:
        if len(given) != 3:
            raise ValueError(f"give all of train_list, dev_list, test_list (got {sorted(given)})")
        paths = {s: require_file(root / v, f"GTZAN {s} list") for s, v in given.items()}
        items = {s: _list_items(p, s, genres) for s, p in paths.items()}
    else:
        check_fractions(dev_fraction, test_fraction)
        stems = _scan(genres)
        if not stems:
            raise FileNotFoundError(f"no GTZAN audio under {genres}/<genre>/")
        assign = stratified_split(stems, dev_fraction, test_fraction)
        items = {
            s: [{"genre": g, "stem": stem, "split": s, "genres_dir": str(genres)}
                for g in sorted(stems) for stem in stems[g] if assign[stem] == s]
            for s in SPLITS
        }  # fmt: skip
    return prepare_splits(
        NAME,
        output_dir,
        SPLITS,
        lambda split: items[split],
        _clip_cut,
        item_id=lambda x: f"{x['genre']}/{x['stem']}",
        **run,
    )
