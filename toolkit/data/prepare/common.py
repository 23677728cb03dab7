"""Machinery shared by the corpus prepare modules (one ``prepare_<name>`` per corpus).

A prepare module lists its corpus's items (clips, or segments of long recordings) from the
corpus's own metadata, and turns each item into cuts with a module-level function. This module
runs that function over the items:

* in parallel (``num_jobs`` processes) and in **parts** of ``part_size`` items; each finished
  part is written atomically under ``<output_dir>/.parts/<manifest stem>/`` so that a killed
  prepare reruns without redoing finished parts (a part is redone if its item list changed);
* lazily: items are streamed from an iterator and cuts are written part by part, so memory stays
  flat with corpus size;
* without crashing on bad data: an item whose audio is missing, unreadable, empty or too short
  raises :class:`SkipItem` (or any exception) and is counted by reason and listed, with its
  detail, in ``<manifest stem>.skipped.tsv`` next to the manifest.

Corpora register themselves with :func:`register_corpus`; ``python -m toolkit.bin.prepare``
builds one CLI subcommand per registered corpus from the function's signature.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import hashlib
import inspect
import itertools
import json
import logging
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any, TypedDict, TypeVar

from lhotse import CutSet, Recording
from lhotse.cut import Cut
from tqdm import tqdm

from toolkit.audio import reason
from toolkit.data.cuts import caption_cut
from toolkit.registry import CORPORA

log = logging.getLogger(__name__)

T = TypeVar("T")
AUDIO_EXTENSIONS = (
    ".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac", ".aiff", ".aif", ".au",
)  # fmt: skip
SPLITS = ("train", "dev", "test")  # the standard split names, in manifest order
PrepareFn = Callable[..., dict[str, CutSet]]
_SUMMARY_VERSION = 1

try:  # Python >= 3.11
    from typing import Unpack
except ImportError:  # Python 3.10 (typing_extensions comes with torch)
    from typing_extensions import Unpack


class PrepareRun(TypedDict, total=False):
    """How a prepare runs, the same for every corpus: the ``**run`` keywords that each
    ``prepare_<name>(corpus_dir, output_dir, ..., **run)`` passes on to :func:`prepare_in_parts`
    (defaults there; :func:`run_defaults`).

    Keys:
        num_jobs: worker processes (1 = in this process).
        force: redo every part even when a finished one is on disk.
        part_size: items per resumable part.
    """

    num_jobs: int
    force: bool
    part_size: int


def register_corpus(name: str) -> Callable[[PrepareFn], PrepareFn]:
    """Decorator: register ``prepare_<name>(corpus_dir, output_dir, ...) -> {split: CutSet}``."""

    def wrap(fn: PrepareFn) -> PrepareFn:
        params = list(inspect.signature(fn).parameters)
        if params[:2] != ["corpus_dir", "output_dir"]:
            raise TypeError(
                f"prepare function of {name!r} must start with (corpus_dir, output_dir)"
            )
        return CORPORA.register(name)(fn)

    return wrap


class SkipItem(Exception):
    """Raised by an item function to skip the item, counted under ``reason`` (e.g. ``missing``,
    ``unreadable``, ``empty``, ``too_short``, ``no_caption``, ``bad_metadata``; for rows of a
    listing file: ``bad_encoding``, ``bad_columns``, ``bad_json``)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def manifest_path(output_dir: Path | str, corpus: str, split: str) -> Path:
    """``<output_dir>/<corpus>_cuts_<split>.jsonl.gz``."""
    return Path(output_dir) / f"{corpus}_cuts_{split}.jsonl.gz"


def find_audio(
    directory: Path | str, stem: str, extensions: Iterable[str] = AUDIO_EXTENSIONS
) -> Path | None:
    """The first existing ``directory/stem<ext>`` over ``extensions`` (None if there is none)."""
    directory = Path(directory)
    for ext in extensions:
        path = directory / f"{stem}{ext}"
        if path.is_file():
            return path
    return None


def first_audio(
    candidates: Iterable[tuple[Path | str, str]], extensions: Iterable[str] = AUDIO_EXTENSIONS
) -> Path | None:
    """The first existing audio file over ``(directory, stem)`` candidates, tried in order with
    :func:`find_audio` (None if there is none)."""
    extensions = tuple(extensions)
    return next((p for d, stem in candidates if (p := find_audio(d, stem, extensions))), None)


def read_recording(path: Path | str | None, recording_id: str) -> Recording:
    """A Lhotse ``Recording`` from the file's header (samples are not loaded).

    Any format Lhotse's audio backends read (wav/flac/ogg through soundfile; mp3/m4a/... through
    ffmpeg where installed); any sample rate and channel count (resampled and downmixed at load).

    Raises:
        SkipItem: ``missing`` (no such file), ``broken_link`` (a link to nothing or a link
            loop), ``unreadable`` (header cannot be read) or ``empty`` (no samples).
    """
    if path is not None and Path(path).is_symlink() and not Path(path).exists():
        raise SkipItem("broken_link", f"{path}: a symbolic link to nothing (or a link loop)")
    if path is None or not Path(path).is_file():
        raise SkipItem("missing", str(path))
    try:
        rec = Recording.from_file(path, recording_id=recording_id)
    except Exception as e:  # corrupt header, unsupported codec, no backend, no permission
        raise SkipItem("unreadable", f"{path}: {reason(e)}") from None
    if rec.num_samples <= 0 or rec.duration <= 0:
        raise SkipItem("empty", str(path))
    return rec


def whole_file_cut(
    path: Path | str | None,
    cut_id: str,
    domain: str,
    source: str,
    labels: dict[str, Any] | None = None,
    *,
    orig_id: str,
    captions: Sequence[str] = (),
    styles: Sequence[str] = (),
    **metadata: Any,
) -> Cut:
    """One cut over the whole audio file ``path`` (recording id = ``cut_id``): the recording from
    :func:`read_recording` (raises :class:`SkipItem` on missing, unreadable or empty audio) and
    the cut from :func:`~toolkit.data.cuts.caption_cut` with ``captions``/``styles`` (none for
    a label-only corpus), ``labels``, ``orig_id`` and the ``metadata`` keys (``split``,
    ``audio_key``, ``fold``, ...; None values are left out)."""
    rec = read_recording(path, cut_id)
    return caption_cut(
        rec, cut_id, captions, styles, domain, source, labels, orig_id=orig_id, metadata=metadata
    )


def csv_rows(path: Path, required: Iterable[str] = ()) -> Iterator[dict[str, str]]:
    """The rows of the UTF-8 CSV ``path`` as dicts keyed by its header, streamed.

    Raises:
        ValueError: the header lacks one of the ``required`` columns (named in the message).
    """
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        missing = set(required) - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: missing column(s) {sorted(missing)}")
        yield from reader


def require_file(path: Path, what: str, hint: str = "") -> Path:
    """``path`` if it is a file, else ``FileNotFoundError("<what> <path> not found<hint>")``."""
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} not found{hint}")
    return path


def require_dir(path: Path, what: str, hint: str = "") -> Path:
    """``path`` if it is a folder, else ``FileNotFoundError("<what> <path> not found<hint>")``."""
    if not path.is_dir():
        raise FileNotFoundError(f"{what} {path} not found{hint}")
    return path


def readable_label(label: str) -> str:
    """``"Electric_guitar"`` → ``"Electric guitar"`` (underscores → spaces, whitespace collapsed)."""
    return " ".join(str(label).replace("_", " ").split())


def hash01(text: str) -> float:
    """A deterministic number in [0, 1) from ``text`` (SHA-1; the same on every machine)."""
    return int(hashlib.sha1(text.encode()).hexdigest()[:12], 16) / float(16**12)


def hash_split(key: str, dev_fraction: float, test_fraction: float) -> str:
    """``test``, ``dev`` or ``train`` for ``key`` by :func:`hash01`: below ``test_fraction`` is
    test, below ``test_fraction + dev_fraction`` dev, the rest train (deterministic, independent
    of the order in which keys are met)."""
    u = hash01(key)
    return "test" if u < test_fraction else "dev" if u < test_fraction + dev_fraction else "train"


def check_fractions(dev_fraction: float, test_fraction: float) -> None:
    """Raise ValueError unless both shares are >= 0 and together below 1."""
    if not (0 <= dev_fraction and 0 <= test_fraction and dev_fraction + test_fraction < 1):
        raise ValueError(f"bad dev_fraction/test_fraction {dev_fraction}/{test_fraction}")


def segment_times(
    total: float, segment: float, hop: float | None = None, min_duration: float = 1.0
) -> list[tuple[float, float]]:
    """Split ``total`` seconds into ``(start, duration)`` windows of ``segment`` s every ``hop``
    s (default: no overlap); a last window shorter than ``min_duration`` is dropped, a shorter
    recording gives one window of its own length (or none if below ``min_duration``)."""
    if segment <= 0:
        raise ValueError(f"segment must be > 0, got {segment}")
    hop = segment if hop is None else hop
    if hop <= 0:
        raise ValueError(f"hop must be > 0, got {hop}")
    out: list[tuple[float, float]] = []
    start = 0.0
    while start < total - 1e-6:
        dur = min(segment, total - start)
        if dur >= min_duration:
            out.append((round(start, 6), round(dur, 6)))
        if start + segment >= total:
            break
        start += hop
    return out


@dataclasses.dataclass
class PrepareSummary:
    """Outcome of one manifest: cut count, hours, skipped items by reason, file paths."""

    manifest: Path
    num_cuts: int
    hours: float
    skipped: Counter
    skipped_file: Path | None

    def to_json(self) -> dict[str, Any]:
        return {
            "version": _SUMMARY_VERSION,
            "manifest": str(self.manifest),
            "num_cuts": self.num_cuts,
            "hours": self.hours,
            "skipped": dict(self.skipped),
            "skipped_file": str(self.skipped_file) if self.skipped_file else None,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> PrepareSummary:
        return cls(
            Path(d["manifest"]),
            int(d["num_cuts"]),
            float(d["hours"]),
            Counter(d["skipped"]),
            Path(d["skipped_file"]) if d.get("skipped_file") else None,
        )

    def line(self) -> str:
        skipped = ", ".join(f"{k} {v}" for k, v in sorted(self.skipped.items())) or "none"
        return (
            f"{self.manifest.name}: {self.num_cuts} cuts, {self.hours:.2f} h; skipped: {skipped}"
            + (f" (listed in {self.skipped_file})" if self.skipped_file else "")
        )


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".jsonl.gz", ".jsonl", ".json"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename (never half-written)."""
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def _run_part(
    fn: Callable[[Any], Iterable[Cut] | Cut | None],
    items: list[Any],
    ids: list[str],
    out: Path,
    skipped_out: Path,
    min_duration: float,
) -> tuple[int, float, dict[str, int]]:
    """Process one part of items; write its cuts and skipped list atomically."""
    cuts: list[Cut] = []
    skipped: list[tuple[str, str, str]] = []
    for item, item_id in zip(items, ids, strict=True):
        try:
            got = fn(item)
        except SkipItem as e:
            skipped.append((item_id, e.reason, e.detail))
            continue
        except Exception as e:  # never lose hours of work to one bad item
            skipped.append((item_id, "error", f"{type(e).__name__}: {e}".splitlines()[0]))
            continue
        if got is None:
            continue
        for cut in [got] if isinstance(got, Cut) else got:
            if cut.duration < min_duration:
                skipped.append((cut.id, "too_short", f"{cut.duration:.3f} s"))
            else:
                cuts.append(cut)
    tmp = out.with_name(out.name.replace(".jsonl.gz", f".tmp{os.getpid()}.jsonl.gz"))
    CutSet.from_cuts(cuts).to_file(tmp)
    os.replace(tmp, out)
    lines = "".join(f"{i}\t{r}\t{d}\n".replace("\r", " ") for i, r, d in skipped)
    atomic_write_text(skipped_out, lines)
    return (
        len(cuts),
        sum(c.duration for c in cuts) / 3600.0,
        dict(Counter(r for _, r, _ in skipped)),
    )


def fn_signature(fn: Callable[..., Any]) -> str:
    """A stable description of an item function and its bound options (for part digests):
    ``module.qualname`` plus the positional/keyword arguments of a ``functools.partial``."""
    if isinstance(fn, functools.partial):
        kw = ", ".join(f"{k}={v!r}" for k, v in sorted(fn.keywords.items()))
        return f"{fn_signature(fn.func)}({', '.join(map(repr, fn.args))}; {kw})"
    return f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', repr(fn))}"


def _chunks(iterable: Iterable[T], size: int) -> Iterator[list[T]]:
    it = iter(iterable)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


def prepare_in_parts(
    items: Iterable[T],
    fn: Callable[[T], Iterable[Cut] | Cut | None],
    out_path: Path | str,
    item_id: Callable[[T], str] = str,
    num_jobs: int = 1,
    part_size: int = 2000,
    min_duration: float = 0.0,
    desc: str | None = None,
    force: bool = False,
) -> PrepareSummary:
    """Run ``fn`` over ``items`` and write the cuts to ``out_path`` (a ``.jsonl.gz`` manifest).

    Args:
        items: picklable item descriptions (e.g. dicts of paths/ids/captions), streamed.
        fn: module-level (picklable) function ``item -> cut | cuts | None``; raises
            :class:`SkipItem` to skip an item under a reason (other exceptions count as
            ``error``).
        item_id: names an item in the skipped list.
        num_jobs: worker processes (1 = in this process).
        part_size: items per resumable part.
        min_duration: cuts shorter than this many seconds are skipped as ``too_short``.
        force: redo every part even when a finished one is on disk.

    Returns:
        The summary; also written to ``<stem>.summary.json``. Rerunning with the same items
        returns at once (finished parts are reused).
    """
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    stem = _stem(out_path)
    desc = desc or stem
    parts_dir = out_path.parent / ".parts" / stem
    parts_dir.mkdir(parents=True, exist_ok=True)
    summary_path = out_path.with_name(f"{stem}.summary.json")
    skipped_file = out_path.with_name(f"{stem}.skipped.tsv")

    done_parts: list[tuple[Path, Path]] = []
    pool = ProcessPoolExecutor(num_jobs) if num_jobs > 1 else None
    digest_all = hashlib.sha1()
    # a part is reused only if its items, the item function and its options are unchanged
    fn_sig = f"{fn_signature(fn)}|min_duration={min_duration!r}"
    reused = 0
    try:
        bar = tqdm(desc=f"prepare {desc}", unit="item", mininterval=5)
        pending: list[tuple[Future, int]] = []
        for k, chunk in enumerate(_chunks(items, part_size)):
            ids = [item_id(x) for x in chunk]
            digest = hashlib.sha1(
                "\n".join([fn_sig, *(repr(x) for x in chunk)]).encode()
            ).hexdigest()
            digest_all.update(digest.encode())
            out = parts_dir / f"part-{k:06d}.jsonl.gz"
            sk = parts_dir / f"part-{k:06d}.skipped.tsv"
            marker = parts_dir / f"part-{k:06d}.done"
            done_parts.append((out, sk))
            if not force and marker.is_file():
                meta = json.loads(marker.read_text())
                if meta.get("digest") == digest:
                    reused += 1
                    bar.update(len(chunk))
                    continue
            if pool is None:
                res = _run_part(fn, chunk, ids, out, sk, min_duration)
                atomic_write_text(marker, json.dumps({"digest": digest, "result": res}))
                bar.update(len(chunk))
            else:
                fut = pool.submit(_run_part, fn, chunk, ids, out, sk, min_duration)
                pending.append((fut, len(chunk)))
                fut.add_done_callback(
                    lambda f, m=marker, d=digest: (
                        f.exception() is None
                        and atomic_write_text(m, json.dumps({"digest": d, "result": f.result()}))
                    )
                )
                while len(pending) >= 2 * num_jobs:  # bounded in-flight work: flat memory
                    f0, n0 = pending.pop(0)
                    f0.result()
                    bar.update(n0)
        for f0, n0 in pending:
            f0.result()
            bar.update(n0)
        bar.close()
    finally:
        if pool is not None:
            pool.shutdown(wait=True)

    total = digest_all.hexdigest()
    if not force and summary_path.is_file() and out_path.is_file():
        old = json.loads(summary_path.read_text())
        if old.get("digest") == total and old.get("version") == _SUMMARY_VERSION:
            summary = PrepareSummary.from_json(old)
            log.info("%s (reused)", summary.line())
            return summary

    # concatenate the parts into the manifest (streamed) and the skipped lists
    num_cuts, hours, skipped = 0, 0.0, Counter()
    tmp = out_path.with_name(f"{stem}.tmp{os.getpid()}.jsonl.gz")
    with CutSet.open_writer(tmp) as writer:
        for part, _ in done_parts:
            for cut in CutSet.from_jsonl_lazy(part):
                writer.write(cut)
                num_cuts += 1
                hours += cut.duration / 3600.0
    os.replace(tmp, out_path)
    tmp_sk = skipped_file.with_name(skipped_file.name + f".tmp{os.getpid()}")
    with open(tmp_sk, "w") as f:
        f.write("id\treason\tdetail\n")
        for _, sk in done_parts:
            for line in sk.read_text().splitlines():
                f.write(line + "\n")
                skipped[line.split("\t")[1]] += 1
    if skipped:
        os.replace(tmp_sk, skipped_file)
    else:
        tmp_sk.unlink()
        skipped_file.unlink(missing_ok=True)
    summary = PrepareSummary(out_path, num_cuts, hours, skipped, skipped_file if skipped else None)
    atomic_write_text(summary_path, json.dumps({**summary.to_json(), "digest": total}, indent=1))
    if reused:
        log.info("%s: reused %d finished part(s)", stem, reused)
    (log.warning if skipped else log.info)("%s", summary.line())
    if num_cuts == 0 and skipped and set(skipped) == {"error"}:
        first = next(line for _, sk in done_parts for line in sk.read_text().splitlines())
        raise RuntimeError(f"{stem}: every item failed; first error: {first}")
    return summary


def _fold_items(
    name: str, meta: Path, fold: int, file_column: str, label_column: str, audio_dir: Path,
    fold_subdirs: bool,
) -> Iterator[dict[str, Any]]:  # fmt: skip
    """Rows of the fold CSV ``meta`` in ``fold``, streamed (non-integer folds are logged)."""
    bad = 0
    for row in csv_rows(meta, (file_column, "fold", label_column)):
        try:
            row_fold = int(row["fold"])
        except (TypeError, ValueError):
            bad += 1
            continue
        if row_fold == fold:
            file = row[file_column].strip()
            folder = audio_dir / f"fold{fold}" if fold_subdirs else audio_dir
            yield {"name": name, "file": file, "label": row[label_column], "fold": fold,
                   "label_column": label_column, "path": str(folder / file)}  # fmt: skip
    if bad and fold == 1:
        log.warning("%s: %d row(s) without an integer fold ignored", meta, bad)


def _fold_clip_cut(item: dict[str, Any]) -> Cut:
    """One clip of a fold corpus → cut with ``sound_event`` (SkipItem on bad metadata/audio)."""
    label = readable_label(item["label"] or "")
    if not label:
        raise SkipItem("bad_metadata", f"{item['file']}: no {item['label_column']}")
    cut_id = f"{item['name']}_{Path(item['file']).stem}"
    return whole_file_cut(
        item["path"], cut_id, "sound", item["name"], {"sound_event": label},
        orig_id=item["file"], fold=item["fold"],
    )  # fmt: skip


def prepare_fold_corpus(
    name: str,
    meta: Path,
    num_folds: int,
    file_column: str,
    label_column: str,
    audio_dir: Path,
    output_dir: Path | str,
    fold_subdirs: bool = False,
    **run: Unpack[PrepareRun],
) -> dict[str, CutSet]:
    """A label-only sound corpus with official cross-validation folds (ESC-50, UrbanSound8K):
    the CSV ``meta`` lists ``file_column``, ``fold`` and ``label_column``; audio is
    ``audio_dir/<file>`` (or ``audio_dir/fold<k>/<file>`` with ``fold_subdirs``). Writes
    ``<name>_cuts_fold{1..num_folds}`` with label ``sound_event`` and metadata ``fold``."""
    return prepare_splits(
        name,
        output_dir,
        [f"fold{k}" for k in range(1, num_folds + 1)],
        lambda fold: _fold_items(
            name, meta, int(fold[4:]), file_column, label_column, audio_dir, fold_subdirs
        ),
        _fold_clip_cut,
        item_id=lambda x: x["file"],
        **run,
    )


def fold_corpus(
    name: str,
    num_folds: int,
    meta_file: str,
    what: str,
    file_column: str,
    label_column: str,
    fold_subdirs: bool,
    doc: str,
) -> PrepareFn:
    """Register and return ``prepare_<name>(corpus_dir, output_dir, **run)`` of a fold corpus:
    :func:`prepare_fold_corpus` over ``<corpus_dir>/<meta_file>`` (its absence is a
    FileNotFoundError naming ``<what> metadata`` and ``docs/corpora/<name>.md``) and the audio
    under ``<corpus_dir>/audio``; ``doc`` is its docstring (the CLI help)."""

    def prepare(
        corpus_dir: Path | str, output_dir: Path | str, **run: Unpack[PrepareRun]
    ) -> dict[str, CutSet]:
        root = Path(corpus_dir)
        hint = f" (see docs/corpora/{name}.md)"
        meta = require_file(root / meta_file, f"{what} metadata", hint)
        return prepare_fold_corpus(
            name, meta, num_folds, file_column, label_column, root / "audio", output_dir,
            fold_subdirs=fold_subdirs, **run,
        )  # fmt: skip

    prepare.__name__ = prepare.__qualname__ = f"prepare_{name}"
    prepare.__doc__ = doc
    return register_corpus(name)(prepare)


def prepare_splits(
    name: str,
    output_dir: Path | str,
    splits: Iterable[str],
    items: Callable[[str], Iterable[Any]],
    fn: Callable[[Any], Any],
    item_id: Callable[[Any], str],
    **options: Any,
) -> dict[str, CutSet]:
    """:func:`prepare_in_parts` for each split in turn into ``<output_dir>/<name>_cuts_<split>``
    (``items(split)`` is called when that split's turn comes, so listings stay streamed; the
    progress bar reads ``<name> <split>``; ``options``: ``num_jobs``, ``min_duration``,
    ``force``, ...). Returns the lazily opened manifests, ``{split: CutSet}``."""
    summaries = {
        split: prepare_in_parts(
            items(split),
            fn,
            manifest_path(output_dir, name, split),
            item_id=item_id,
            desc=f"{name} {split}",
            **options,
        )
        for split in splits
    }
    return lazy_manifests(summaries)


def run_defaults() -> dict[str, Any]:
    """``{key: default}`` of every :class:`PrepareRun` key (the defaults of
    :func:`prepare_in_parts`)."""
    params = inspect.signature(prepare_in_parts).parameters
    return {key: params[key].default for key in PrepareRun.__annotations__}


def takes_run(fn: PrepareFn) -> bool:
    """Whether a prepare function takes the :class:`PrepareRun` keywords as ``**run``."""
    params = inspect.signature(fn).parameters.values()
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def option_names(fn: PrepareFn) -> list[str]:
    """The keyword names ``fn`` accepts: its named parameters, then the :class:`PrepareRun`
    keys where it takes ``**run``."""
    params = inspect.signature(fn).parameters.values()
    named = [p.name for p in params if p.kind is not inspect.Parameter.VAR_KEYWORD]
    return named + (list(PrepareRun.__annotations__) if takes_run(fn) else [])


def lazy_manifests(summaries: dict[str, PrepareSummary]) -> dict[str, CutSet]:
    """``{split: lazily opened CutSet}`` of prepared manifests (the return of a prepare fn)."""
    return {split: CutSet.from_jsonl_lazy(s.manifest) for split, s in summaries.items()}
