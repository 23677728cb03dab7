"""Google Speech Commands v0.02 keyword spotting (label-only evaluation corpus).

Layout (the ``speech_commands_v0.02`` archive): ``<word>/<speaker hash>_nohash_<n>.wav``
(35 words, 1 s or shorter, 16 kHz mono), ``validation_list.txt`` and ``testing_list.txt``
(one ``<word>/<file>.wav`` per line; every other clip is ``train``) and
``_background_noise_/*.wav`` (six long noise recordings, never a keyword).

Task ``speech_keyword``:

* ``classes="all"``: the 35 words as written (``yes``, ``marvin``, ``backward``, ...);
* ``classes="v2_12"``: the 12-class benchmark: ``yes no up down left right on off stop go``,
  ``unknown`` (all other words) and ``silence``. Silence clips are 1 s windows of the background
  noise files (cuts over the noise recordings with start/duration): each file of ``n`` whole
  seconds gives ``n`` windows, the last ``round(n * silence_test_fraction)`` go to ``test``, the
  ``round(n * silence_dev_fraction)`` before them to ``dev``, the rest to ``train`` (disjoint time
  ranges). With the real six files (roughly 95, 61, 61, 60, 60, 60 s) and the defaults that is
  about 317 train / 40 dev / 40 test silence clips. Unlike the separately released v0.02 test
  archive (balanced, with its own silence and unknown clips), unknown clips here are all
  other-word clips of each list.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lhotse import CutSet
from lhotse.cut import Cut

from toolkit.data.cuts import caption_cut
from toolkit.data.prepare.common import (
    SPLITS,
    PrepareRun,
    SkipItem,
    Unpack,
    prepare_splits,
    read_recording,
    register_corpus,
    whole_file_cut,
)

NAME = "speechcommands"
BACKGROUND = "_background_noise_"
V2_12_WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
LIST_FILES = {"dev": "validation_list.txt", "test": "testing_list.txt"}
SILENCE_SECONDS = 1.0


def keyword_label(word: str, classes: str) -> str:
    """The ``speech_keyword`` value of a clip of ``word`` under the class set ``classes``."""
    if classes == "all":
        return word
    return word if word in V2_12_WORDS else "unknown"


def silence_windows(
    num_seconds: int, dev_fraction: float, test_fraction: float
) -> dict[str, list[int]]:
    """``{split: [window index]}`` of the 1 s windows of one background file (contiguous
    ranges: train first, then dev, then test at the end of the file)."""
    n_test = round(num_seconds * test_fraction)
    n_dev = round(num_seconds * dev_fraction)
    n_train = max(num_seconds - n_test - n_dev, 0)
    return {
        "train": list(range(n_train)),
        "dev": list(range(n_train, n_train + n_dev)),
        "test": list(range(n_train + n_dev, num_seconds)),
    }


def _keyword_cut(item: dict[str, Any], classes: str) -> Cut:
    rel = item["rel"]
    parts = rel.split("/")
    if len(parts) != 2 or not parts[1].lower().endswith(".wav") or parts[0] == BACKGROUND:
        raise SkipItem("bad_metadata", f"list entry {rel!r}")
    return whole_file_cut(
        Path(item["root"]) / rel, item["id"], "speech", NAME,
        {"speech_keyword": keyword_label(parts[0], classes)}, orig_id=rel, split=item["split"],
    )  # fmt: skip


def _silence_cuts(item: dict[str, Any], dev_fraction: float, test_fraction: float) -> list[Cut]:
    rec = read_recording(Path(item["root"]) / item["rel"], item["id"])
    windows = silence_windows(int(rec.duration // SILENCE_SECONDS), dev_fraction, test_fraction)
    stem = item["id"].removeprefix(f"{NAME}_bg_")
    return [
        caption_cut(
            rec,
            f"{NAME}_silence_{stem}_{k:03d}",
            [],
            [],
            "speech",
            NAME,
            {"speech_keyword": "silence"},
            orig_id=item["rel"],
            start=k * SILENCE_SECONDS,
            duration=SILENCE_SECONDS,
            metadata={"split": item["split"]},
        )
        for k in windows[item["split"]]
    ]


def _cut_or_cuts(
    item: dict[str, Any], classes: str, dev_fraction: float, test_fraction: float
) -> Cut | list[Cut]:
    if item["kind"] == "silence":
        return _silence_cuts(item, dev_fraction, test_fraction)
    return _keyword_cut(item, classes)


def _stem_id(rel: str) -> str:
    word, name = rel.split("/", 1) if "/" in rel else ("", rel)
    return f"{NAME}_{word}_{os.path.splitext(name)[0]}".replace("/", "_")


def _read_list(path: Path) -> Iterator[str]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield line.strip()


def _items(root: Path, split: str, classes: str, silence_key: str) -> Iterator[dict[str, Any]]:
    """Items of one split: list entries (dev/test) or every other clip (train), then the
    background noise files for ``v2_12`` silence. ``key`` names an item in the resumable parts
    (the silence options are part of it, so changing them redoes those parts)."""
    base = {"root": str(root), "split": split, "kind": "keyword"}
    if split in LIST_FILES:
        for rel in _read_list(root / LIST_FILES[split]):
            yield {**base, "rel": rel, "id": _stem_id(rel), "key": rel}
    else:
        held_out = {rel for f in LIST_FILES.values() for rel in _read_list(root / f)}
        words = sorted(
            e.name
            for e in os.scandir(root)
            if e.is_dir() and e.name != BACKGROUND and not e.name.startswith(".")
        )
        for word in words:
            names = sorted(
                e.name
                for e in os.scandir(root / word)
                if e.is_file() and e.name.lower().endswith(".wav")
            )
            for name in names:
                rel = f"{word}/{name}"
                if rel not in held_out:
                    yield {**base, "rel": rel, "id": _stem_id(rel), "key": rel}
    if classes == "v2_12" and (root / BACKGROUND).is_dir():
        for name in sorted(os.listdir(root / BACKGROUND)):
            if name.lower().endswith(".wav"):
                stem = os.path.splitext(name)[0]
                rel = f"{BACKGROUND}/{name}"
                yield {
                    **base,
                    "kind": "silence",
                    "rel": rel,
                    "id": f"{NAME}_bg_{stem}",
                    "key": f"{rel}#{silence_key}",
                }


@register_corpus(NAME)
def prepare_speechcommands(
    corpus_dir: Path | str,
    output_dir: Path | str,
    classes: str = "all",
    silence_dev_fraction: float = 0.1,
    silence_test_fraction: float = 0.1,
    **run: Unpack[PrepareRun],
) -> dict[str, CutSet]:
    """Speech Commands v0.02 → ``speechcommands[_v2_12]_cuts_{train,dev,test}``.

    Args:
        classes: ``all`` (35 words) or ``v2_12`` (10 words + ``unknown`` + ``silence``).
        silence_dev_fraction, silence_test_fraction: ``v2_12`` only: share of each background
            noise file's 1 s windows given to ``dev`` / ``test``.
    """
    root = Path(corpus_dir)
    if classes not in ("all", "v2_12"):
        raise ValueError(f"classes must be 'all' or 'v2_12', got {classes!r}")
    if not (
        0 <= silence_dev_fraction
        and 0 <= silence_test_fraction
        and silence_dev_fraction + silence_test_fraction < 1
    ):
        raise ValueError("silence_dev_fraction + silence_test_fraction must be in [0, 1)")
    for f in LIST_FILES.values():
        if not (root / f).is_file():
            raise FileNotFoundError(f"{root / f} not found (is {root} speech_commands_v0.02?)")
    name = NAME if classes == "all" else f"{NAME}_{classes}"
    fn = functools.partial(
        _cut_or_cuts,
        classes=classes,
        dev_fraction=silence_dev_fraction,
        test_fraction=silence_test_fraction,
    )
    silence_key = f"silence dev={silence_dev_fraction} test={silence_test_fraction}"
    return prepare_splits(
        name,
        output_dir,
        SPLITS,
        lambda split: _items(root, split, classes, silence_key),
        fn,
        item_id=lambda x: x["key"],
        **run,
    )
