"""ParaSpeechCaps: speaking-style captions for VoxCeleb1/2, EARS, Expresso and Emilia utterances.

The release (Hugging Face ``ajd12342/paraspeechcaps``) is annotation only: parquet shards
``data/{train_base,train_scaled,dev,holdout}-NNNNN-of-NNNNN.parquet`` with columns ``source,
relative_audio_path, text_description`` (1–2 style captions), ``transcription, intrinsic_tags,
situational_tags, basic_tags, all_tags, speakerid, name, duration, gender, accent, pitch,
speaking_rate, noise, utterance_pitch_mean, snr, phonemes``. The audio comes from the source
corpora; a row's file is ``<root of its source>/<relative_audio_path>`` (the release's own
mapping script does exactly this), with one root option per source.

Parquet is read with ``pyarrow`` when it is installed (feature-detected). Without it, export the
splits to JSON lines or CSV next to the parquet files (``Dataset.to_json`` / ``to_csv``, same
stem, e.g. ``data/dev-00000-of-00001.jsonl``); list cells of a CSV may be JSON or Python-literal
lists. :func:`iter_records` is the reader (also used by other corpus modules).

Splits: ``train_base`` (+ ``train_scaled`` when ``include_scaled``) → ``train``, ``dev`` → ``dev``,
``holdout`` → ``test``; ``split`` metadata keeps the official name.
"""

from __future__ import annotations

import ast
import csv
import functools
import gzip
import importlib.util
import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from lhotse import CutSet
from lhotse.cut import Cut

from toolkit.data.prepare.common import (
    PrepareRun,
    SkipItem,
    Unpack,
    find_audio,
    prepare_splits,
    register_corpus,
    whole_file_cut,
)

NAME = "paraspeechcaps"
SOURCES = ("voxceleb", "ears", "expresso", "emilia")
SPLITS = {"train_base": "train", "train_scaled": "train", "dev": "dev", "holdout": "test"}
TABLE_SUFFIXES = (".parquet", ".jsonl", ".jsonl.gz", ".json", ".csv")
LABEL_COLUMNS = {
    "gender": "speech_gender",
    "accent": "speech_accent",
    "pitch": "speech_pitch",
    "speaking_rate": "speech_rate",
    "noise": "speech_noise",
}
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def have_pyarrow() -> bool:
    """Whether ``pyarrow`` can be imported (parquet support)."""
    return importlib.util.find_spec("pyarrow") is not None


def _table_suffix(path: Path) -> str:
    name = path.name.lower()
    return next((s for s in TABLE_SUFFIXES if name.endswith(s)), "")


def iter_records(path: Path | str, columns: list[str] | None = None) -> Iterator[dict[str, Any]]:
    """Rows of a parquet (needs pyarrow), JSON-lines (``.jsonl``/``.json``/``.jsonl.gz``) or CSV
    table as dicts, streamed (parquet in record batches).

    Raises:
        RuntimeError: a parquet file without pyarrow installed (says how to export instead).
        ValueError: an unknown file type or a malformed JSON line (file and line named).
    """
    path = Path(path)
    suffix = _table_suffix(path)
    if suffix == ".parquet":
        if not have_pyarrow():
            raise RuntimeError(
                f"{path}: reading parquet needs pyarrow, which is not installed; install it or "
                "export the table to JSON lines/CSV next to it (datasets: "
                "Dataset.from_parquet(p).to_json(p.replace('.parquet', '.jsonl')))"
            )
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(path)
        names = set(pf.schema_arrow.names)
        cols = [c for c in columns if c in names] if columns else None
        for batch in pf.iter_batches(batch_size=4096, columns=cols):
            yield from batch.to_pylist()
        return
    if suffix in (".jsonl", ".json", ".jsonl.gz"):
        opener = gzip.open if suffix == ".jsonl.gz" else open
        with opener(path, "rt", encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    try:
                        yield json.loads(line)
                    except json.JSONDecodeError as e:
                        raise ValueError(f"{path}:{n}: invalid JSON: {e}") from None
        return
    if suffix == ".csv":
        with open(path, encoding="utf-8-sig", newline="") as f:
            yield from csv.DictReader(f)
        return
    raise ValueError(f"{path}: unsupported table type (expected one of {TABLE_SUFFIXES})")


def as_list(value: Any) -> list[str]:
    """A list cell as a list of non-empty strings: a list, a JSON/Python-literal list string
    (CSV exports), a ``;``-separated string, a single string, or None/NaN → ``[]``."""
    if value is None:
        return []
    if isinstance(value, float):  # NaN from a CSV/pandas export
        return []
    if isinstance(value, str):
        text = value.strip()
        if not text or text.lower() in ("none", "null", "nan", "[]"):
            return []
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                try:
                    value = ast.literal_eval(text)
                except (ValueError, SyntaxError):
                    value = text.strip("[]").split(",")
        else:
            value = text.split(";")
    if isinstance(value, str):
        value = [value]
    out = [" ".join(str(v).strip().strip("'\"").split()) for v in value if v is not None]
    return [v for v in out if v]


def _scalar(value: Any) -> str | None:
    if value is None or isinstance(value, float) and value != value:
        return None
    text = " ".join(str(value).split())
    return text if text and text.lower() not in ("none", "null", "nan") else None


def split_files(root: Path, official: str, prefer_parquet: bool) -> list[Path]:
    """The table files of one official split under ``root/data`` or ``root``: ``<split>.<ext>``
    or ``<split>-<shard>.<ext>``; parquet when ``prefer_parquet`` (else exports, else parquet)."""
    pattern = re.compile(rf"^{re.escape(official)}([-_.][^/]*)?$")
    found: list[Path] = []
    for folder in (root / "data", root):
        if folder.is_dir():
            found += [
                p
                for p in sorted(folder.iterdir())
                if p.is_file()
                and _table_suffix(p)
                and pattern.match(p.name[: -len(_table_suffix(p))])
            ]
        if found:
            break
    parquet = [p for p in found if _table_suffix(p) == ".parquet"]
    exports = [p for p in found if _table_suffix(p) != ".parquet"]
    if parquet and (prefer_parquet or not exports):
        return parquet
    return exports


def _safe(text: str) -> str:
    return _UNSAFE.sub("_", text).strip("_") or "x"


def _item_cut(item: dict[str, Any], fallback_extensions: bool) -> Cut:
    if item.get("error"):
        raise SkipItem(item["error"][0], item["error"][1])
    path = Path(item["path"])
    if not path.is_file() and fallback_extensions:
        stem = path.name[: -len(path.suffix)] if path.suffix else path.name
        path = find_audio(path.parent, stem) or path
    captions = item["captions"]
    return whole_file_cut(
        path, item["id"], "speech", NAME, item["labels"], captions=captions,
        styles=["speaking_style"] * len(captions), orig_id=item["rel"], split=item["split"],
    )  # fmt: skip


def _items(
    files: Iterable[Path],
    official: str,
    roots: dict[str, Path],
    seen: set[str] | None,
    record_seen: bool,
) -> Iterator[dict[str, Any]]:
    """Items of one official split; ``seen`` ids (train_base) mark train_scaled duplicates."""
    for path in files:
        for n, row in enumerate(iter_records(path), 1):
            rel = _scalar(row.get("relative_audio_path")) or ""
            source = (_scalar(row.get("source")) or "").lower()
            base = {"split": official, "rel": rel}
            if not rel or source not in roots:
                yield {
                    **base,
                    "id": f"{NAME}_{official}_row{n}",
                    "path": "",
                    "error": (
                        "bad_metadata",
                        f"{path.name}:{n}: source {source!r}, relative_audio_path {rel!r}",
                    ),
                }
                continue
            stem = rel[: -len(Path(rel).suffix)] if Path(rel).suffix else rel
            cut_id = f"{NAME}_{source}_{_safe(stem)}"
            item = {**base, "id": cut_id, "path": str(roots[source] / rel)}
            if seen is not None and not record_seen and cut_id in seen:
                yield {**item, "error": ("duplicate", f"{rel} is also in train_base")}
                continue
            if seen is not None and record_seen:
                seen.add(cut_id)
            captions = as_list(row.get("text_description"))
            if not captions:
                yield {**item, "error": ("no_caption", rel)}
                continue
            labels: dict[str, Any] = {k: _scalar(row.get(c)) for c, k in LABEL_COLUMNS.items()}
            labels["speech_corpus"] = source
            tags: list[str] = []
            for tag in as_list(row.get("intrinsic_tags")) + as_list(row.get("situational_tags")):
                if tag.lower() not in tags:
                    tags.append(tag.lower())
            labels["speech_style_tags"] = tags or None
            yield {**item, "captions": captions, "labels": labels}


def _train_items(groups: list[tuple[str, list[Path]]], roots: dict[str, Path]) -> Iterator[dict]:
    seen: set[str] = set()
    for official, files in groups:
        yield from _items(files, official, roots, seen, record_seen=official == "train_base")


def _root(corpus: Path, option: str) -> Path:
    return corpus / option  # an absolute option stays as it is


@register_corpus(NAME)
def prepare_paraspeechcaps(
    corpus_dir: Path | str,
    output_dir: Path | str,
    voxceleb_dir: str = "voxceleb",
    ears_dir: str = "ears",
    expresso_dir: str = "expresso",
    emilia_dir: str = "emilia",
    include_scaled: bool = True,
    fallback_extensions: bool = True,
    min_duration: float = 0.5,
    **run: Unpack[PrepareRun],
) -> dict[str, CutSet]:
    """ParaSpeechCaps (annotation tables + source audio) → ``paraspeechcaps_cuts_{train,dev,test}``.

    Args:
        voxceleb_dir, ears_dir, expresso_dir, emilia_dir: roots of the source corpora (relative
            to ``corpus_dir`` unless absolute) that the release's ``relative_audio_path`` values
            are relative to (e.g. ``voxceleb1/dev/wav/...``, ``p001/...``, ``audio_48khz/...``,
            ``EN/EN_B00000/...``).
        include_scaled: add the automatically annotated ``train_scaled`` split to ``train``.
        fallback_extensions: when the listed file is absent, accept the same stem with another
            audio extension (e.g. FLAC copies, or ``.m4a`` VoxCeleb2 originals).
        min_duration: utterances shorter than this (s) are skipped as ``too_short``.
    """
    root = Path(corpus_dir)
    roots = {
        "voxceleb": _root(root, voxceleb_dir),
        "ears": _root(root, ears_dir),
        "expresso": _root(root, expresso_dir),
        "emilia": _root(root, emilia_dir),
    }
    prefer_parquet = have_pyarrow()
    files = {s: split_files(root, s, prefer_parquet) for s in SPLITS}
    for official, paths in files.items():
        if any(_table_suffix(p) == ".parquet" for p in paths) and not prefer_parquet:
            raise RuntimeError(
                f"ParaSpeechCaps split {official}: only parquet files ({paths[0].name}) and "
                "pyarrow is not installed; install pyarrow or export the split to JSON lines/CSV "
                "next to them (see docs/corpora/paraspeechcaps.md)"
            )
    if not include_scaled:
        files["train_scaled"] = []
    if not any(files.values()):
        raise FileNotFoundError(
            f"no ParaSpeechCaps tables ({', '.join(SPLITS)}) under {root}/data or {root}"
        )
    groups: dict[str, list[tuple[str, list[Path]]]] = {}
    for official, split in SPLITS.items():
        if files[official]:
            groups.setdefault(split, []).append((official, files[official]))
    fn = functools.partial(_item_cut, fallback_extensions=fallback_extensions)
    return prepare_splits(
        NAME,
        output_dir,
        groups,
        lambda split: _train_items(groups[split], roots),
        fn,
        item_id=lambda x: x["rel"] or x["id"],
        min_duration=min_duration,
        **run,
    )
