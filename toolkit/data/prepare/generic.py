"""Generic prepare recipes for any new corpus: a labelled folder tree, or a listing file.

``folder``: ``corpus_dir/<label>/**/<audio>`` (the first sub-folder under the split names the
label), optionally under split folders ``corpus_dir/{train,dev,test}/<label>/...``. Without split
folders the files of each label are split deterministically (seeded hash) into train/dev/test by
``dev_fraction``/``test_fraction``, stratified by label and grouped by recording (see
:func:`stratified_split` and :func:`recording_group`); with split folders but no ``dev`` folder a
dev split is carved from train by the same rule (:func:`carve_dev`).

``listing``: a CSV, TSV or JSONL file with one row per clip or segment. Columns (all optional but
``path``): ``id``, ``path`` (relative to ``corpus_dir`` or absolute), ``caption`` (several
captions separated by ``caption_separator``; or a JSON list in JSONL), ``caption_1`` ...
``caption_N``, ``style``, ``domain``, ``start``/``end`` (seconds), ``split``, ``label`` (→ task
``<domain>_label``, or ``task``) and any ``<domain>_<attribute>`` label column (``;`` separates the
labels of a multi-label task), ``group`` (recording group: rows of one group share a split). Rows
without a ``split`` get a seeded, stratified, grouped one; a dev split is carved from train when
no row is in dev.

Both accept audio of any format Lhotse reads, any sample rate and channel count (resampled and
downmixed when loaded). Files shorter than ``min_duration`` are skipped and counted; files longer
than ``max_duration`` are cut into ``segment_duration`` windows. Captions: rows without one get
captions made from the label(s) (``the sound of <label>`` style, from ``caption_template``) when
``label_captions`` is true, so a labelled folder can also be used for pretraining.
"""

from __future__ import annotations

import codecs
import csv
import functools
import hashlib
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from lhotse import CutSet
from lhotse.cut import Cut

from toolkit.audio import AudioLoadError, read_audio, wav_missing_bytes
from toolkit.config import ConfigError
from toolkit.data.cuts import DOMAINS, caption_cut, is_label_key
from toolkit.data.prepare.common import (
    AUDIO_EXTENSIONS,
    SPLITS,
    PrepareRun,
    SkipItem,
    Unpack,
    hash01,
    hash_split,
    prepare_splits,
    read_recording,
    register_corpus,
    require_file,
    segment_times,
)

_SPLIT_ALIASES = {"train": "train", "dev": "dev", "valid": "dev", "val": "dev",
                  "validation": "dev", "test": "test", "eval": "test"}  # fmt: skip
_ID_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")
# a trailing segment / take marker of a file name: ``_seg3``, ``-take2``, ``_part01``, ``_a``
_TAKE_MARKER = re.compile(
    r"(?:[_\-. ](?:seg|segment|part|take|chunk|clip|slice)[_\-]?\d+|[_\-. ][A-Za-z])$", re.I
)
log = logging.getLogger(__name__)


def _safe_id(text: str) -> str:
    return _ID_SAFE.sub("_", text).strip("_") or "clip"


def _readable(label: str) -> str:
    return re.sub(r"[_\-]+", " ", label).strip()


def label_captions_for(labels: dict[str, Any], template: str) -> tuple[list[str], list[str]]:
    """Captions from labels: a tag list (style ``tags``) and the template sentence (``short``)."""
    values: list[str] = []
    for v in labels.values():
        values.extend(v if isinstance(v, list) else [v])
    values = [_readable(v) for v in values if v]
    if not values:
        return [], []
    return [", ".join(values), template.format(label=" and ".join(values))], ["tags", "short"]


def _item_cuts(item: dict[str, Any], min_duration: float, max_duration: float,
               segment_duration: float, check_audio: bool = False) -> list[Cut]:  # fmt: skip
    """Cuts of one listed file (or one listed segment), segmenting long files; a bad listing
    row (``item["skip"]``: reason and detail) is skipped and counted here. The detail of a
    skipped listing row starts with ``<listing>:<line>:``. ``check_audio`` decodes the file
    and skips it as ``bad_audio`` when it cannot be decoded or holds NaN/Inf samples."""
    try:
        return _cuts_of(item, min_duration, max_duration, segment_duration, check_audio)
    except SkipItem as e:
        if item.get("where") and not e.detail.startswith(item["where"]):
            raise SkipItem(e.reason, f"{item['where']}: {e.detail}") from None
        raise


def _cuts_of(item: dict[str, Any], min_duration: float, max_duration: float,
             segment_duration: float, check_audio: bool) -> list[Cut]:  # fmt: skip
    if "skip" in item:
        raise SkipItem(*item["skip"])
    rec = read_recording(item["path"], item["id"])
    if check_audio:
        try:
            audio, sr = read_audio(item["path"])
        except AudioLoadError as e:
            raise SkipItem("bad_audio", str(e).replace("cannot read audio file ", "")) from None
        missing = wav_missing_bytes(item["path"])
        if missing:
            raise SkipItem(
                "truncated",
                f"{item['path']}: {missing} bytes of the data chunk its header declares are "
                f"missing (a truncated copy; {audio.shape[-1] / sr:.3f} s are left)",
            )
    start = float(item.get("start") or 0.0)
    end = item.get("end")
    end = rec.duration if end in (None, "") else min(float(end), rec.duration)
    if end - start <= 0:
        raise SkipItem("bad_metadata", f"segment [{start}, {end}] of {item['path']}")
    if end - start < min_duration:
        raise SkipItem("too_short", f"{end - start:.3f} s: {item['path']}")
    windows = [(start, end - start)]
    if max_duration and end - start > max_duration:
        windows = [(start + s, d) for s, d in segment_times(end - start, segment_duration,
                                                             min_duration=min_duration)]  # fmt: skip
    cuts = []
    for k, (s, d) in enumerate(windows):
        cid = item["id"] if len(windows) == 1 else f"{item['id']}_seg{k:04d}"
        cuts.append(
            caption_cut(
                rec,
                cid,
                item["captions"],
                item["styles"],
                item["domain"],
                item["source"],
                item["labels"],
                orig_id=item.get("orig_id"),
                start=s,
                duration=d,
                metadata={"split": item["split"]},
            )  # fmt: skip
        )
    return cuts


def _write_splits(
    items_by_split: dict[str, Iterator[dict[str, Any]]] | dict[str, list[dict[str, Any]]],
    name: str,
    output_dir: Path | str,
    min_duration: float,
    max_duration: float,
    segment_duration: float,
    check_audio: bool,
    run: PrepareRun,
) -> dict[str, CutSet]:
    fn = functools.partial(
        _item_cuts,
        min_duration=min_duration,
        max_duration=max_duration,
        segment_duration=segment_duration,
        check_audio=check_audio,
    )
    return prepare_splits(
        name,
        output_dir,
        items_by_split,
        lambda split: items_by_split[split],
        fn,
        item_id=lambda x: str(x["path"]),
        min_duration=min_duration,
        **run,
    )


def _seeded_hash(key: str, seed: int) -> float:
    """Position of ``key`` in the seeded order (seed 0: the unseeded hash of earlier versions)."""
    return hash01(key if not seed else f"{seed}:{key}")


def recording_group(rel: str | PurePosixPath, pattern: str | None = None) -> str:
    """The recording group of a file, from its path ``rel`` below its label folder: files of one
    group always share a split (:func:`stratified_split`), so takes or segments of one recording
    never straddle train and dev/test.

    * ``pattern`` (a regular expression, e.g. ``^[^_]+`` for ``<speaker>_<n>.wav``): searched in
      ``rel``; its first group (else the whole match) names the group;
    * else a file in a sub-folder of the label folder belongs to that sub-folder
      (``<label>/<session or speaker>/<file>``);
    * else the file name without a trailing segment or take marker (``rec7_seg2.wav``,
      ``rec7-take3.wav``, ``rec7_part01.wav``, ``rec7_b.wav`` → ``rec7``); a file without one is
      a group of its own (numbered files such as ``dog_001.wav`` are separate recordings).
    """
    rel = PurePosixPath(rel)
    if pattern:
        m = re.search(pattern, rel.as_posix())
        if m:
            return next((g for g in m.groups() if g), None) or m.group(0)
    if len(rel.parts) > 1:
        return rel.parts[0]
    stem = rel.name.rsplit(".", 1)[0] if "." in rel.name else rel.name
    base = stem
    while True:
        shorter = _TAKE_MARKER.sub("", base)
        if shorter == base or not shorter:
            break
        base = shorter
    return base if base != stem else rel.name


def _group_splits(
    sizes: dict[str, int], dev_fraction: float, test_fraction: float, seed: int
) -> dict[str, str]:
    """``{group: split}`` for the groups of one label (``{group: number of files}``): groups in
    seeded hash order go to test until ``test_fraction`` of the files is reached, then to dev,
    the rest to train; at least one group each for a positive fraction when there are enough
    groups, and never every group (train keeps one)."""
    groups = sorted(sizes, key=lambda g: (_seeded_hash(g, seed), g))
    n = sum(sizes.values())
    wanted = [(f, round(n * f)) for f in (test_fraction, dev_fraction)]
    minimum = 1 + sum(f > 0 for f, _ in wanted)
    counts, i = [], 0
    for fraction, target in wanted:
        k, taken = 0, 0
        while i + k < len(groups) and taken < target:
            taken += sizes[groups[i + k]]
            k += 1
        if len(groups) >= minimum and fraction > 0:
            k = max(k, 1)
        k = min(k, max(len(groups) - 1 - i, 0))
        counts.append(k)
        i += k
    n_test, n_dev = counts
    return {
        g: "test" if j < n_test else "dev" if j < n_test + n_dev else "train"
        for j, g in enumerate(groups)
    }


def stratified_split(
    keyed: list[tuple[str, str]],
    dev_fraction: float,
    test_fraction: float,
    groups: dict[str, str] | None = None,
    seed: int = 0,
    counts: dict[str, int] | None = None,
) -> dict[str, str]:
    """``{key: split}`` for ``(label, key)`` pairs: within each label, the recording groups
    (``groups``: ``{key: group}``; default: every key its own group) ordered by a seeded hash go
    to test, dev, then train by the fractions of the label's files (at least one group per split
    with a positive fraction when the label has enough groups; train is never emptied).
    ``counts``: files per key (default 1). Deterministic, independent of file order; the keys of
    one group share a split."""
    sizes: dict[str, dict[str, int]] = {}
    for label, key in keyed:
        group = groups.get(key, key) if groups else key
        by_label = sizes.setdefault(label, {})
        by_label[group] = by_label.get(group, 0) + (counts.get(key, 1) if counts else 1)
    split_of = {
        (label, g): split
        for label, gs in sizes.items()
        for g, split in _group_splits(gs, dev_fraction, test_fraction, seed).items()
    }
    return {key: split_of[(label, groups.get(key, key) if groups else key)] for label, key in keyed}


def carve_dev(
    keyed: list[tuple[str, str]],
    dev_fraction: float,
    groups: dict[str, str] | None = None,
    seed: int = 0,
    what: str = "",
    counts: dict[str, int] | None = None,
) -> set[str]:
    """The keys of train ``(label, key)`` pairs moved to a dev split that the corpus lacks:
    :func:`stratified_split` with no test share (seeded, stratified by label, whole recording
    groups only; ``counts``: files per key, default 1). Logs how many clips and groups moved."""
    if dev_fraction <= 0 or not keyed:
        return set()
    split_of = stratified_split(keyed, dev_fraction, 0.0, groups, seed, counts)
    dev = {k for k, s in split_of.items() if s == "dev"}
    n_groups = len({groups.get(k, k) if groups else k for k in dev})
    labels = {lab for lab, _ in keyed}

    def n_files(keys: Any) -> int:
        return sum(counts.get(k, 1) if counts else 1 for k in keys)

    if dev:
        log.info(
            "%sno dev split given: carved %d of %d train clips (%d recording group(s), %d "
            "label(s)) into dev (dev_fraction %g, seed %d)",
            what, n_files(dev), n_files(k for _, k in keyed), n_groups,
            len({lab for lab, k in keyed if k in dev}), dev_fraction, seed,
        )  # fmt: skip
    else:
        log.warning(
            "%sno dev split given and none could be carved: every one of the %d label(s) has "
            "fewer than 2 recording groups in train (add a dev/ folder or more files)",
            what, len(labels),
        )  # fmt: skip
    return dev


def check_domain(domain: str) -> str:
    """``domain`` if it is one of :data:`~toolkit.data.cuts.DOMAINS`, else a one-line
    ConfigError."""
    if domain not in DOMAINS:
        raise ConfigError(f"--domain {domain!r}: expected one of {', '.join(DOMAINS)}")
    return domain


def check_task(task: str) -> str:
    """``task`` if it is a label key ``<domain>_<attribute>``, else a one-line ConfigError that
    shows the expected form."""
    if not is_label_key(task):
        prefix = task.split("_", 1)[0] if "_" in task else ""
        why = (
            f"its prefix {prefix!r} is not a domain"
            if prefix and prefix not in DOMAINS
            else "it is not <domain>_<attribute> in lower case (letters, digits, _)"
        )
        raise ConfigError(
            f"--task {task!r}: {why}; expected <domain>_<attribute> with domain one of "
            f"{', '.join(DOMAINS)}, e.g. sound_class, music_instrument, speech_emotion"
        )
    return task


@register_corpus("folder")
def prepare_folder(
    corpus_dir: Path | str,
    output_dir: Path | str,
    name: str = "folder",
    domain: str = "sound",
    task: str | None = None,
    dev_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
    group_pattern: str | None = None,
    label_captions: bool = True,
    caption_template: str = "the sound of {label}",
    min_duration: float = 0.1,
    max_duration: float = 30.0,
    segment_duration: float = 10.0,
    check_audio: bool = False,
    **run: Unpack[PrepareRun],
) -> dict[str, CutSet]:
    """Labelled folder tree (``<label>/**/<audio>``) → ``<name>_cuts_{train,dev,test}``.

    Args:
        name: corpus name (manifest prefix and ``source``).
        domain: ``speech``, ``music``, ``sound`` or ``mix``.
        task: label task key (default ``<domain>_class``).
        dev_fraction, test_fraction: shares of each label's files when there are no split
            folders; ``dev_fraction`` is also the share of train carved into dev when there are
            split folders but no dev folder.
        seed: seed of the split order (0: the order of earlier versions).
        group_pattern: regular expression naming a file's recording group (see
            :func:`recording_group`; default: its sub-folder under the label folder, else its
            name without a segment/take marker). A group never straddles two splits.
        label_captions: give each clip captions made from its label.
        caption_template: the sentence caption, ``{label}`` replaced by the readable label.
        check_audio: decode every file once; skip it as ``bad_audio`` when it cannot be
            decoded or holds NaN/Inf samples (otherwise only headers are read here).
    """
    root = Path(corpus_dir)
    check_domain(domain)
    task = check_task(task or f"{domain}_class")
    files = sorted(  # broken links and link loops too: reported, not silently passed over
        p for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and not p.is_dir()
    )
    if not files:
        raise FileNotFoundError(f"no audio files ({', '.join(AUDIO_EXTENSIONS)}) under {root}")
    rows = []  # (split or None, label, rel, path)
    for path in files:
        rel = path.relative_to(root)
        parts = rel.parts
        split = _SPLIT_ALIASES.get(parts[0].lower()) if len(parts) > 2 else None
        if split is not None:
            parts = parts[1:]
        if len(parts) < 2:
            continue  # a file directly under the root (or split folder) has no label folder
        rows.append((split, parts[0], rel, path))
    if not rows:
        raise FileNotFoundError(f"no audio files in label sub-folders (<label>/<file>) of {root}")
    labels = sorted({r[1] for r in rows})
    if len(labels) == 1:
        log.warning(
            "%s: one label folder only (%r): every clip gets the same label; the label folders "
            "must be the first level under --corpus-dir (or under its train/dev/test folders)",
            root, labels[0],
        )  # fmt: skip
    groups = {}  # relative path → "<label>/<recording group>"
    for split, label, rel, _ in rows:
        below_label = PurePosixPath(*rel.parts[(2 if split else 1) :])
        groups[rel.as_posix()] = f"{label}/{recording_group(below_label, group_pattern)}"
    if all(r[0] is None for r in rows):
        split_of = stratified_split(
            [(r[1], r[2].as_posix()) for r in rows], dev_fraction, test_fraction, groups, seed
        )
        rows = [(split_of[r[2].as_posix()], *r[1:]) for r in rows]
    else:
        rows = [(r[0] or "train", *r[1:]) for r in rows]
        if not any(r[0] == "dev" for r in rows):
            train = [(r[1], r[2].as_posix()) for r in rows if r[0] == "train"]
            dev = carve_dev(train, dev_fraction, groups, seed, what=f"{root}: ")
            rows = [("dev" if r[2].as_posix() in dev else r[0], *r[1:]) for r in rows]
    by_split: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
    for split, label, rel, path in rows:
        labels = {task: label}
        caps, styles = label_captions_for(labels, caption_template) if label_captions else ([], [])
        by_split[split].append(
            {
                "id": f"{name}_{_safe_id(rel.with_suffix('').as_posix())}",
                "path": str(path),
                "captions": caps,
                "styles": styles,
                "domain": domain,
                "source": name,
                "labels": labels,
                "orig_id": rel.as_posix(),
                "split": split,
            }
        )
    return _write_splits(
        {s: v for s, v in by_split.items() if v}, name, output_dir, min_duration, max_duration,
        segment_duration, check_audio, run,
    )  # fmt: skip


def _utf8_lines(f: Any, bad: dict[int, str]) -> Iterator[str]:
    """Lines of the binary file ``f`` decoded as UTF-8 (a leading BOM dropped). A line that is
    not valid UTF-8 is decoded with ``surrogateescape`` (so that CSV parsing still finds its
    fields) and recorded in ``bad`` as ``{line number: what is wrong}``."""
    for n, raw in enumerate(f, 1):
        if n == 1 and raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8) :]
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as e:
            bad[n] = f"not valid UTF-8: byte 0x{raw[e.start]:02x} at column {e.start + 1}"
            yield raw.decode("utf-8", "surrogateescape")


def _printable(text: str) -> str:
    """A field of an undecodable line with its bad bytes as U+FFFD (safe to write anywhere)."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def iter_listing(
    path: Path, required: tuple[str, ...] = ()
) -> Iterator[tuple[int, dict[str, Any] | None, SkipItem | None]]:
    """``(line, row, problem)`` for every row of a CSV (``,``), TSV (``\\t``) or JSONL listing,
    streamed. ``line`` is the row's first line in the file (1-based). ``problem`` is None for a
    good row, else a :class:`SkipItem` (the row is then best effort, or None):

    * ``bad_encoding``: the row is not valid UTF-8 (e.g. a Latin-1 ``café``). It is reported,
      not guessed: a wrong decode would silently corrupt the caption. A UTF-8 BOM is accepted.
    * ``bad_columns``: a CSV/TSV row with another number of fields than the header.
    * ``bad_json``: a JSONL line that is not a JSON object.
    * ``bad_metadata``: a ``required`` field is empty or absent.

    Raises:
        ValueError: the CSV/TSV header itself is not UTF-8 or lacks a ``required`` column.
    """
    suffix = path.suffix.lower()
    with open(path, "rb") as f:
        if suffix in (".jsonl", ".json"):
            rows = _jsonl_rows(path, f)
        else:
            rows = _csv_rows(path, f, "\t" if suffix in (".tsv", ".tab") else ",", required)
        for n, row, problem in rows:
            if problem is None:
                missing = [k for k in required if row.get(k) in (None, "")]
                if missing:
                    problem = SkipItem("bad_metadata", f"no {missing[0]!r}")
            yield n, row, problem


def _jsonl_rows(path: Path, f: Any) -> Iterator[tuple[int, Any, SkipItem | None]]:
    bad: dict[int, str] = {}
    for n, line in enumerate(_utf8_lines(f, bad), 1):
        if not line.strip():
            continue
        if n in bad:
            try:
                row = json.loads(_printable(line))
            except json.JSONDecodeError:
                row = None
            yield n, row if isinstance(row, dict) else None, SkipItem("bad_encoding", bad[n])
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            yield n, None, SkipItem("bad_json", f"invalid JSON: {e}")
            continue
        if not isinstance(row, dict):
            yield n, None, SkipItem("bad_json", f"a JSON {type(row).__name__}, not an object")
            continue
        yield n, row, None


def _csv_rows(
    path: Path, f: Any, delimiter: str, required: tuple[str, ...]
) -> Iterator[tuple[int, dict[str, Any], SkipItem | None]]:
    bad: dict[int, str] = {}
    reader = csv.reader(_utf8_lines(f, bad), delimiter=delimiter)
    try:
        header = next(reader, None)
        if header is None:
            return
        if bad:
            raise ConfigError(
                f"{path}:1: the header is {bad[min(bad)]} (save the listing as UTF-8)"
            )
        missing = [k for k in required if k not in header]
        if missing:
            raise ConfigError(f"{path}:1: no {missing[0]!r} column; columns: {', '.join(header)}")
        prev = reader.line_num
        for fields in reader:
            first, prev = prev + 1, reader.line_num
            if not any(x.strip() for x in fields):
                continue  # a blank line
            enc = [bad[k] for k in range(first, prev + 1) if k in bad]
            if enc:
                row = dict(zip(header, map(_printable, fields)))
                yield first, row, SkipItem("bad_encoding", enc[0])
            elif len(fields) != len(header):
                problem = SkipItem(
                    "bad_columns", f"{len(fields)} fields, the header has {len(header)}"
                )
                yield first, dict(zip(header, fields)), problem
            else:
                yield first, dict(zip(header, fields)), None
    except csv.Error as e:
        where = f"{path}:{reader.line_num}"
        raise ConfigError(f"{where}: unreadable {delimiter!r}-separated row: {e}") from None


def read_listing(path: Path) -> Iterator[dict[str, Any]]:
    """The good rows of a CSV, TSV or JSONL listing as dicts, streamed (:func:`iter_listing`
    also yields the bad ones with their reason)."""
    for _, row, problem in iter_listing(path):
        if problem is None and row is not None:
            yield row


@register_corpus("listing")
def prepare_listing(
    corpus_dir: Path | str,
    output_dir: Path | str,
    listing: Path | str = "listing.csv",
    name: str = "listing",
    domain: str = "sound",
    task: str | None = None,
    caption_separator: str = "|",
    style: str = "short",
    dev_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
    group_pattern: str | None = None,
    label_captions: bool = False,
    caption_template: str = "the sound of {label}",
    min_duration: float = 0.1,
    max_duration: float = 30.0,
    segment_duration: float = 10.0,
    check_audio: bool = False,
    **run: Unpack[PrepareRun],
) -> dict[str, CutSet]:
    """CSV/TSV/JSONL listing (``path, caption(s), label(s), start, end, split``) → manifests.

    Args:
        listing: the listing file (relative to ``corpus_dir`` unless absolute).
        domain: default domain of rows without a ``domain`` column.
        task: label key of the ``label`` column (default ``<domain>_label``), e.g.
            ``music_instrument``.
        caption_separator: separates several captions in one ``caption`` cell.
        style: caption style of rows without a ``style`` column.
        dev_fraction, test_fraction: shares of the rows without a ``split`` (stratified by
            label, whole recording groups); ``dev_fraction`` is also the share of train carved
            into dev when no row is in dev.
        seed: seed of the split order.
        group_pattern: regular expression naming a row's recording group in its ``path`` (see
            :func:`recording_group`); default: the ``group`` column, else the file (without a
            segment/take marker), so the segments of one file share a split.
        label_captions: rows without any caption get captions made from their labels.
    """
    root = Path(corpus_dir)
    listing = Path(listing)
    listing = require_file(root / listing, "listing file")
    check_domain(domain)
    if task is not None:
        check_task(task)
    opts = dict(root=root, listing=listing, name=name, domain=domain, task=task,
                caption_separator=caption_separator, style=style, dev_fraction=dev_fraction,
                test_fraction=test_fraction, label_captions=label_captions,
                caption_template=caption_template, group_pattern=group_pattern)  # fmt: skip
    # one streaming pass plans the splits (memory: one entry per recording group), then one per
    # split writes it (memory stays flat with the listing's length); bad rows are reported in
    # the skipped list of their split, or of the first split that has good rows
    plan = _plan_listing_splits(_listing_items(**opts), dev_fraction, test_fraction, seed, listing)
    present: set[str] = set()
    bad_splits: set[str] = set()
    for item in _listing_items(**opts, plan=plan):
        (bad_splits if "skip" in item else present).add(item["split"])
    present = present or bad_splits
    splits = [s for s in SPLITS if s in present]
    return _write_splits(
        {s: _listing_items(**opts, plan=plan, only_split=s, splits=splits) for s in splits},
        name, output_dir, min_duration, max_duration, segment_duration, check_audio, run,
    )  # fmt: skip


def _plan_listing_splits(
    items: Iterator[dict[str, Any]],
    dev_fraction: float,
    test_fraction: float,
    seed: int,
    listing: Path,
) -> dict[str, str]:
    """``{recording group: split}`` for the good rows of a listing (the items of its planning
    pass, whose ``split`` is the row's own or None): groups of rows without a split get a
    stratified, grouped, seeded one; when no row ends in dev, whole train groups are carved into
    dev (:func:`carve_dev`). A group keeps the split of its first row that names one."""
    given: dict[str, str] = {}
    strata: dict[str, str] = {}  # group → its label (stratum)
    sizes: dict[str, int] = {}
    for item in items:
        if "skip" in item:
            continue
        group = item["group"]
        sizes[group] = sizes.get(group, 0) + 1
        strata.setdefault(group, item["stratum"])
        if item["split"] and group not in given:
            given[group] = item["split"]
    plan = dict(given)
    unsplit = [(strata[g], g) for g in sizes if g not in given]
    if unsplit:
        plan.update(stratified_split(unsplit, dev_fraction, test_fraction, None, seed, sizes))
    if "dev" not in plan.values():
        train = [(strata[g], g) for g, s in plan.items() if s == "train"]
        for g in carve_dev(train, dev_fraction, None, seed, f"{listing}: ", sizes):
            plan[g] = "dev"
    return plan


def _listing_group(row: dict[str, Any], path: Path, pattern: str | None) -> str:
    """A row's recording group: its ``group`` column, else :func:`recording_group` of its file
    (the parent folder stays part of the name: a listing's files often share one folder)."""
    if row.get("group") not in (None, ""):
        return f"group:{row['group']}"
    rel = PurePosixPath(path.as_posix())
    if pattern:
        return f"file:{recording_group(rel, pattern)}"
    return f"file:{rel.parent / recording_group(rel.name)}"


def _listing_items(
    root: Path,
    listing: Path,
    name: str,
    domain: str,
    task: str | None,
    caption_separator: str,
    style: str,
    dev_fraction: float,
    test_fraction: float,
    label_captions: bool,
    caption_template: str,
    group_pattern: str | None = None,
    plan: dict[str, str] | None = None,
    only_split: str | None = None,
    splits: list[str] | None = None,
) -> Iterator[dict[str, Any]]:
    """Items of a listing (all, or those of ``only_split``), streamed row by row. Without
    ``plan`` (the planning pass) a good row's item carries its own ``split`` (or None), its
    ``group`` and ``stratum`` (label); with it, the planned split. A bad row
    (:func:`iter_listing`) becomes an item ``{"path": "<listing>:<line>", "skip": (reason,
    detail), "split": ...}`` in its row's split (when it can be read and is one of ``splits``),
    else in the first of ``splits``. A row naming the same file (and segment) as an earlier row
    is skipped as ``duplicate``; an explicit ``id`` given twice for different files as
    ``duplicate_id``; two files with the same stem get distinct ids."""
    first_line: dict[tuple, int] = {}  # (path, start, end) -> line
    id_owner: dict[str, tuple] = {}  # cut id -> (path, start, end)
    for n, row, problem in iter_listing(listing, required=("path",)):
        if problem is not None:
            split = _SPLIT_ALIASES.get(str((row or {}).get("split") or "").lower())
            split = split or hash_split(f"{listing.name}:{n}", dev_fraction, test_fraction)
            if splits and split not in splits:
                split = splits[0]
            if only_split is None or split == only_split:
                item = {"path": f"{listing}:{n}", "skip": (problem.reason, problem.detail)}
                yield {**item, "split": split}
            continue
        path = Path(str(row["path"]))
        group = _listing_group(row, path, group_pattern)
        path = root / path
        dom = str(row.get("domain") or domain)
        caps = row.get("caption") or []
        if isinstance(caps, str):
            caps = [c for c in caps.split(caption_separator)] if caption_separator else [caps]
        caps = list(caps) + [row[k] for k in sorted(row) if k.startswith("caption_") and row[k]]
        labels: dict[str, Any] = {}
        for key, value in row.items():
            if value in (None, ""):
                continue
            if key == "label":
                key = task or f"{dom}_label"
            if not is_label_key(key):
                continue
            if isinstance(value, str) and ";" in value:
                value = [v.strip() for v in value.split(";") if v.strip()]
            labels[key] = value
        styles = [str(row.get("style") or style)] * len(caps)
        if not [c for c in caps if str(c).strip()] and label_captions:
            caps, styles = label_captions_for(labels, caption_template)
        start, end = row.get("start"), row.get("end")
        base = str(row.get("id") or path.with_suffix("").name)
        if start not in (None, "") and not row.get("id"):
            base = f"{base}_{float(start):.2f}"
        split = _SPLIT_ALIASES.get(str(row.get("split") or "").lower())
        key = (str(path), str(start or ""), str(end or ""))
        cid = f"{name}_{_safe_id(base)}"
        dup = None
        if key in first_line:
            dup = ("duplicate", f"{path}: the same file as line {first_line[key]}")
        elif cid in id_owner and row.get("id"):
            dup = (
                "duplicate_id",
                f"id {row['id']!r} already used at line {first_line[id_owner[cid]]}",
            )
        elif cid in id_owner:  # another file with the same stem: a distinct id
            cid = f"{cid}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
        if dup is None:
            first_line[key], id_owner[cid] = n, key
        if plan is None:
            stratum = str(labels.get(task or f"{dom}_label", next(iter(labels.values()), "")))
            if dup is None:
                yield {"split": split, "group": group, "stratum": stratum}
            continue
        if split is None or (split == "train" and plan.get(group) == "dev"):
            split = plan.get(group) or split or "train"
        if only_split is not None and split != only_split:
            continue
        if dup is not None:
            yield {"path": str(path), "skip": dup, "split": split, "where": f"{listing.name}:{n}"}
            continue
        yield (
            {
                "id": cid,
                "where": f"{listing.name}:{n}",
                "path": str(path),
                "captions": [str(c) for c in caps],
                "styles": styles,
                "domain": dom,
                "source": name,
                "labels": labels,
                "orig_id": str(row.get("id") or path.name),
                "split": split,
                "start": start,
                "end": end,
            }
        )
