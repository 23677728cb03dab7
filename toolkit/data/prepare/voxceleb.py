"""VoxCeleb1 / VoxCeleb2 speaker identification (label-only evaluation corpus).

VoxCeleb1 (``version=1``): audio ``wav/<speaker id>/<youtube id>/<utt>.wav`` (the dev and test
zips both unpack to ``wav/``; ``vox1_dev_wav/wav`` and ``vox1_test_wav/wav`` are searched too),
split by the official identification split file ``iden_split.txt`` (lines
``<1|2|3> <id>/<yt>/<utt>.wav``: 1 train, 2 dev, 3 test; all 1,251 speakers occur in every
split). Task ``speech_speaker`` = the VoxCeleb speaker id (``id10001``); with ``vox1_meta.csv``
(TAB-separated ``VoxCeleb1 ID, VGGFace1 ID, Gender, Nationality, Set``) also ``speech_gender``
(``male``/``female``) and ``speech_nationality`` (as written, e.g. ``Ireland``).

VoxCeleb2 (``version=2``): audio ``dev/aac/<speaker id>/<youtube id>/<utt>.m4a`` (m4a needs
ffmpeg for Lhotse; files converted to wav in place, or under ``dev/wav/``, work everywhere).
VoxCeleb2 has NO identification split: every utterance is ``train`` unless ``dev_fraction`` /
``test_fraction`` hold out whole videos of each speaker (deterministic hash of
``<speaker>/<video>``), so held-out splits share speakers but not recording sessions.
``vox2_meta.csv`` (comma-separated ``VoxCeleb2 ID, VGGFace2 ID, Gender, Set``) adds
``speech_gender``. The ``test/aac`` part (118 other speakers, meant for verification) is not used.

Everything is streamed: the split file line by line and the VoxCeleb2 tree directory by
directory, so memory stays flat for a million utterances.
"""

from __future__ import annotations

import csv
import functools
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lhotse import CutSet
from lhotse.cut import Cut

from toolkit.data.prepare.common import (
    AUDIO_EXTENSIONS,
    SPLITS,
    PrepareRun,
    SkipItem,
    Unpack,
    check_fractions,
    hash_split,
    prepare_splits,
    register_corpus,
    require_file,
    whole_file_cut,
)

log = logging.getLogger(__name__)

IDEN_SPLIT_CODES = {"1": "train", "2": "dev", "3": "test"}
_GENDERS = {"m": "male", "f": "female", "male": "male", "female": "female"}
_SPEAKER = re.compile(r"^id\d+$")
V1_AUDIO_ROOTS = ("wav", "vox1_dev_wav/wav", "vox1_test_wav/wav")
V2_AUDIO_ROOTS = ("dev/wav", "dev/aac")


def read_speaker_meta(path: Path) -> dict[str, dict[str, str]]:
    """``{speaker id: {"gender": ..., "nationality": ...}}`` from ``vox1_meta.csv`` (TAB) or
    ``vox2_meta.csv`` (comma); header names and cells are stripped, unknown values dropped."""
    with open(path, encoding="utf-8", newline="") as f:
        header = f.readline()
        delimiter = "\t" if header.count("\t") >= header.count(",") else ","
        names = [h.strip().lower() for h in header.rstrip("\r\n").split(delimiter)]
        out: dict[str, dict[str, str]] = {}
        for row in csv.reader(f, delimiter=delimiter):
            cells = dict(zip(names, (c.strip() for c in row), strict=False))
            spk = row[0].strip() if row else ""
            if not _SPEAKER.match(spk):
                continue
            info: dict[str, str] = {}
            gender = _GENDERS.get(cells.get("gender", "").lower())
            if gender:
                info["gender"] = gender
            nationality = cells.get("nationality", "")
            if nationality:
                info["nationality"] = nationality.replace("_", " ")
            out[spk] = info
    return out


def _labels(speaker: str, meta: dict[str, dict[str, str]]) -> dict[str, str]:
    info = meta.get(speaker, {})
    labels = {"speech_speaker": speaker}
    if "gender" in info:
        labels["speech_gender"] = info["gender"]
    if "nationality" in info:
        labels["speech_nationality"] = info["nationality"]
    return labels


def _utterance_cut(item: dict[str, Any], source: str) -> Cut:
    """One utterance → one whole-file cut (``SkipItem`` on bad metadata / missing / corrupt)."""
    if item.get("error"):
        raise SkipItem("bad_metadata", item["error"])
    path = item.get("path")
    if path is None:
        raise SkipItem("missing", f"{item['orig_id']} under {', '.join(item['roots'])}")
    return whole_file_cut(
        path, item["id"], "speech", source, item["labels"], orig_id=item["orig_id"],
        split=item["split"],
    )  # fmt: skip


def _locate(roots: list[Path], rel: str) -> Path | None:
    for root in roots:
        path = root / rel
        if path.is_file():
            return path
    return None


def _v1_items(
    split_file: Path, split: str, roots: list[Path], meta: dict[str, dict[str, str]]
) -> Iterator[dict[str, Any]]:
    """Items of one split of ``iden_split.txt``, streamed line by line."""
    with open(split_file, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2 or fields[0] not in IDEN_SPLIT_CODES:
                if split == "train":  # report once, not once per split
                    log.warning("%s:%d: malformed line %r ignored", split_file, n, line.strip())
                continue
            if IDEN_SPLIT_CODES[fields[0]] != split:
                continue
            rel = fields[1]
            parts = rel.split("/")
            item: dict[str, Any] = {
                "orig_id": rel,
                "split": split,
                "roots": [str(r) for r in roots],
            }
            if len(parts) != 3 or not _SPEAKER.match(parts[0]):
                item.update(id=f"voxceleb1_line{n}", error=f"{split_file.name}:{n}: {rel!r}")
                yield item
                continue
            stem = os.path.splitext(parts[2])[0]
            item.update(
                id=f"voxceleb1_{parts[0]}_{parts[1]}_{stem}",
                path=_locate(roots, rel),
                labels=_labels(parts[0], meta),
            )
            yield item


def _sorted_dirs(path: Path) -> list[str]:
    with os.scandir(path) as it:
        return sorted(e.name for e in it if e.is_dir() and not e.name.startswith("."))


def _v2_items(
    root: Path,
    split: str,
    meta: dict[str, dict[str, str]],
    dev_fraction: float,
    test_fraction: float,
) -> Iterator[dict[str, Any]]:
    """Items of one split of the VoxCeleb2 dev tree, walked directory by directory (sorted)."""
    for spk in _sorted_dirs(root):
        if not _SPEAKER.match(spk):
            continue
        for video in _sorted_dirs(root / spk):
            if hash_split(f"{spk}/{video}", dev_fraction, test_fraction) != split:
                continue
            with os.scandir(root / spk / video) as it:
                files = sorted(
                    e.name
                    for e in it
                    if e.is_file() and os.path.splitext(e.name)[1].lower() in AUDIO_EXTENSIONS
                )
            for name in files:
                stem = os.path.splitext(name)[0]
                yield {
                    "id": f"voxceleb2_{spk}_{video}_{stem}",
                    "orig_id": f"{spk}/{video}/{stem}",
                    "path": str(root / spk / video / name),
                    "split": split,
                    "labels": _labels(spk, meta),
                    "roots": [str(root)],
                }


@register_corpus("voxceleb")
def prepare_voxceleb(
    corpus_dir: Path | str,
    output_dir: Path | str,
    version: int = 1,
    split_file: str = "iden_split.txt",
    meta_file: str = "",
    dev_fraction: float = 0.0,
    test_fraction: float = 0.0,
    **run: Unpack[PrepareRun],
) -> dict[str, CutSet]:
    """VoxCeleb1 (official iden split) or VoxCeleb2 → ``voxceleb<version>_cuts_<split>``.

    Args:
        version: 1 (VoxCeleb1 identification) or 2 (VoxCeleb2 dev part).
        split_file: VoxCeleb1 identification split file, relative to ``corpus_dir``.
        meta_file: speaker metadata CSV (default ``vox<version>_meta.csv`` when present).
        dev_fraction, test_fraction: VoxCeleb2 only: share of each speaker's videos held out
            into ``dev`` / ``test`` (0 → everything is ``train``).
    """
    root = Path(corpus_dir)
    if version not in (1, 2):
        raise ValueError(f"version must be 1 or 2, got {version}")
    check_fractions(dev_fraction, test_fraction)
    meta_path = root / (meta_file or f"vox{version}_meta.csv")
    if meta_file:
        require_file(meta_path, "speaker metadata")
    meta = read_speaker_meta(meta_path) if meta_path.is_file() else {}
    name = f"voxceleb{version}"
    fn = functools.partial(_utterance_cut, source=name)
    items: dict[str, Iterator[dict[str, Any]]] = {}
    if version == 1:
        if dev_fraction or test_fraction:
            raise ValueError("dev_fraction/test_fraction apply to VoxCeleb2 only")
        iden = require_file(root / split_file, "identification split file")
        roots = [root / r for r in V1_AUDIO_ROOTS if (root / r).is_dir()]
        if not roots:
            raise FileNotFoundError(f"no audio folder ({', '.join(V1_AUDIO_ROOTS)}) in {root}")
        items = {s: _v1_items(iden, s, roots, meta) for s in SPLITS}
    else:
        audio = next((root / r for r in V2_AUDIO_ROOTS if (root / r).is_dir()), None)
        if audio is None:
            raise FileNotFoundError(f"no audio folder ({', '.join(V2_AUDIO_ROOTS)}) in {root}")
        fractions = {"train": 1.0, "dev": dev_fraction, "test": test_fraction}
        items = {
            s: _v2_items(audio, s, meta, dev_fraction, test_fraction)
            for s in SPLITS
            if fractions[s] > 0
        }
    return prepare_splits(
        name,
        output_dir,
        items,
        lambda split: items[split],
        fn,
        item_id=lambda x: x["orig_id"],
        **run,
    )
