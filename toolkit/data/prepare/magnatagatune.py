"""MagnaTagATune (29 s music clips, 188 binary tags) → cut manifests (label-only evaluation).

Reads ``annotations_final.csv``: TAB-separated, every field double-quoted, columns ``clip_id``,
the 188 tag columns (``0``/``1``; tag names such as ``no voice``, ``hard rock``, ``female
vocal``) and ``mp3_path`` (``f/american_bach_soloists-...-30-59.mp3``, relative to the audio
folder; the first path component is one of the 16 folders ``0``–``9``, ``a``–``f`` of the
``mp3.zip`` archive). Audio ``<audio_dir>/<mp3_path>`` (16 kHz mono mp3; read with
libsndfile ≥ 1.1 or ffmpeg). Files converted to another format keep their stem: set
``audio_ext`` (e.g. ``.wav``).

Split: the widely used one of Dieleman & Schrauwen (2014) by the first folder of ``mp3_path``:
``0``–``b`` (12 folders) → ``train``, ``c`` → ``dev``, ``d``–``f`` → ``test``. Tags: the
"top-50" protocol keeps the ``top_k_tags`` tags most frequent on the *train* split (ties
broken by column order; ``0`` keeps all 188). Cut id ``magnatagatune_<clip_id>``, no caption,
multi-label ``music_tags`` = the clip's kept tags (column order; may be empty unless
``drop_untagged``). A few archive mp3s are empty (0 bytes) and are counted as ``empty`` or
``unreadable``.
"""

from __future__ import annotations

import csv
import logging
from collections import Counter
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from lhotse import CutSet
from lhotse.cut import Cut

from toolkit.data.prepare.common import (
    SPLITS,
    PrepareRun,
    SkipItem,
    Unpack,
    prepare_splits,
    register_corpus,
    require_file,
    whole_file_cut,
)

log = logging.getLogger(__name__)

NAME = "magnatagatune"
_FOLDER_SPLIT = {**{c: "train" for c in "0123456789ab"}, "c": "dev", "d": "test", "e": "test",
                 "f": "test"}  # fmt: skip


def folder_split(mp3_path: str) -> str | None:
    """``"c/x.mp3"`` → ``"dev"``: the standard split from the first folder (None if unknown)."""
    return _FOLDER_SPLIT.get(PurePosixPath(mp3_path).parts[0].lower()) if mp3_path else None


def _open(annotations: Path) -> tuple[Iterator[dict[str, str]], list[str], Any]:
    f = open(annotations, encoding="utf-8", newline="")  # noqa: SIM115 (closed by the caller)
    reader = csv.DictReader(f, delimiter="\t")
    fields = list(reader.fieldnames or [])
    if "clip_id" not in fields or "mp3_path" not in fields:
        f.close()
        raise ValueError(f"{annotations}: expected TAB-separated columns clip_id, <tags>, mp3_path")
    return reader, [c for c in fields if c not in ("clip_id", "mp3_path")], f


def select_tags(annotations: Path, top_k: int) -> list[str]:
    """The ``top_k`` tags most frequent on the train folders (all tags if ``top_k <= 0``), in
    decreasing frequency (ties by column order)."""
    reader, tags, f = _open(annotations)
    with f:
        if top_k <= 0:
            return tags
        counts: Counter = Counter({t: 0 for t in tags})
        for row in reader:
            if folder_split(row.get("mp3_path") or "") == "train":
                counts.update(t for t in tags if (row.get(t) or "").strip() == "1")
    order = {t: i for i, t in enumerate(tags)}
    return sorted(tags, key=lambda t: (-counts[t], order[t]))[:top_k]


def _clip_cut(item: dict[str, Any]) -> Cut:
    """One clip → cut with ``music_tags`` (SkipItem on bad metadata, missing/empty audio)."""
    if item["drop_untagged"] and not item["tags"]:
        raise SkipItem("no_tags", item["mp3_path"])
    rel = PurePosixPath(item["mp3_path"])
    if item["audio_ext"]:
        rel = rel.with_suffix(item["audio_ext"])
    return whole_file_cut(
        Path(item["audio_dir"]) / rel, f"{NAME}_{item['clip_id']}", "music", NAME,
        {"music_tags": item["tags"]}, orig_id=item["clip_id"], split=item["split"],
    )  # fmt: skip


def _rows(
    annotations: Path, split: str, keep: list[str], audio_dir: Path, audio_ext: str,
    drop_untagged: bool,
) -> Iterator[dict[str, Any]]:  # fmt: skip
    reader, tags, f = _open(annotations)
    kept = set(keep)
    columns = [t for t in tags if t in kept]
    unknown = 0
    with f:
        for row in reader:
            mp3 = (row.get("mp3_path") or "").strip()
            row_split = folder_split(mp3)
            if row_split is None:
                unknown += 1
                continue
            if row_split == split:
                yield {
                    "clip_id": (row.get("clip_id") or "").strip(), "mp3_path": mp3,
                    "tags": [t for t in columns if (row.get(t) or "").strip() == "1"],
                    "split": split, "audio_dir": str(audio_dir), "audio_ext": audio_ext,
                    "drop_untagged": drop_untagged,
                }  # fmt: skip
    if unknown and split == "train":
        log.warning(
            "%s: %d row(s) with an mp3_path outside folders 0-f ignored", annotations, unknown
        )


@register_corpus(NAME)
def prepare_magnatagatune(
    corpus_dir: Path | str,
    output_dir: Path | str,
    annotations: str = "annotations_final.csv",
    audio_dir: str = "",
    audio_ext: str = "",
    top_k_tags: int = 50,
    drop_untagged: bool = False,
    **run: Unpack[PrepareRun],
) -> dict[str, CutSet]:
    """MagnaTagATune → ``magnatagatune_cuts_{train,dev,test}`` (multi-label ``music_tags``).

    Args:
        annotations: the TAB-separated annotation file (relative to ``corpus_dir``).
        audio_dir: folder holding ``0/`` … ``f/`` (relative to ``corpus_dir``; ``""`` = it).
        audio_ext: replace the ``.mp3`` of ``mp3_path`` by this extension (``""`` = keep).
        top_k_tags: keep the tags most frequent on train (``0`` = all 188).
        drop_untagged: skip clips with none of the kept tags (counted as ``no_tags``).
    """
    root = Path(corpus_dir)
    ann = require_file(root / annotations, "MagnaTagATune", " (see docs/corpora/magnatagatune.md)")
    if audio_ext and not audio_ext.startswith("."):
        audio_ext = "." + audio_ext
    keep = select_tags(ann, top_k_tags)
    log.info("MagnaTagATune: %d tags kept: %s", len(keep), ", ".join(keep))
    audio = root / audio_dir
    return prepare_splits(
        NAME,
        output_dir,
        SPLITS,
        lambda split: _rows(ann, split, keep, audio, audio_ext, drop_untagged),
        _clip_cut,
        item_id=lambda x: x["mp3_path"],
        **run,
    )
