"""Strongly labelled sound event detection sets (DESED / DCASE task 4 TSV format).

A TSV with header ``filename\\tonset\\toffset\\tevent_label`` (one row per event, several rows
per file; a file without events has one row with empty onset/offset/label), audio at
``<audio_dir>/<filename>``. Each file becomes ONE whole-file cut with

* ``sound_events``: the clip-level multi-label list (sorted, unique, readable: ``Alarm_bell_
  ringing`` → ``alarm bell ringing`` when ``readable_labels``), ``[]`` for a file without events;
* ``audio_key`` = ``yt:<id>:<start>`` when the file name is a YouTube segment name
  (``Y<11-char id>_<start>_<end>.wav``, as in DESED real recordings).

The frame-level (strong) labels cannot ride in the cut (the contract allows one supervision per
cut and a fixed set of metadata keys), so they are written to a sidecar
``<output_dir>/<name>_events_<split>.tsv`` with header ``cut_id\\tonset\\toffset\\tevent_label``:
one row per event of every written cut (skipped files have none), in seconds relative to the cut
start, clipped to the cut, sorted by cut id then onset. Events that start at or after the end
of the audio are dropped (and counted in the log).
"""

from __future__ import annotations

import csv
import functools
import logging
import os
import re
from pathlib import Path
from typing import Any

from lhotse import CutSet
from lhotse.cut import Cut

from toolkit.data.cuts import DOMAINS, caption_cut, cut_custom
from toolkit.data.prepare.common import (
    PrepareRun,
    SkipItem,
    Unpack,
    lazy_manifests,
    manifest_path,
    prepare_in_parts,
    read_recording,
    register_corpus,
    require_dir,
    require_file,
)

log = logging.getLogger(__name__)

_SPLIT_ALIASES = {
    "train": "train",
    "dev": "dev",
    "valid": "dev",
    "val": "dev",
    "validation": "dev",
    "test": "test",
    "eval": "test",
    "holdout": "test",
}
_YT_NAME = re.compile(r"^Y?([A-Za-z0-9_-]{11})_(\d+(?:\.\d+)?)_(\d+(?:\.\d+)?)$")
_ID_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")
Event = tuple[float, float, str]


def events_path(output_dir: Path | str, name: str, split: str) -> Path:
    """``<output_dir>/<name>_events_<split>.tsv`` (the strong-label sidecar)."""
    return Path(output_dir) / f"{name}_events_{split}.tsv"


def readable(label: str) -> str:
    """``Alarm_bell_ringing`` → ``alarm bell ringing``."""
    return re.sub(r"\s+", " ", label.replace("_", " ")).strip().lower()


def youtube_audio_key(filename: str) -> str | None:
    """``Y--0w1YA1Hm4_30.000_40.000.wav`` → ``yt:--0w1YA1Hm4:30`` (None for other names)."""
    m = _YT_NAME.match(os.path.splitext(os.path.basename(filename))[0])
    return f"yt:{m.group(1)}:{int(float(m.group(2)))}" if m else None


def clip_events(events: list[Event], duration: float) -> list[Event]:
    """Events clipped to ``[0, duration]``; events starting at/after the end are dropped."""
    out = []
    for onset, offset, label in events:
        if onset < duration:
            out.append((max(onset, 0.0), min(offset, duration), label))
    return sorted(out)


def read_strong_tsv(path: Path, readable_labels: bool) -> dict[str, tuple[list[Event], str | None]]:
    """``{filename: (events, error)}`` of a strong-label TSV, streamed row by row (files in
    first-seen order). ``error`` describes the first bad row of a file (the file is skipped)."""
    files: dict[str, tuple[list[Event], str | None]] = {}
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t")
        need = {"filename", "onset", "offset", "event_label"}
        if not need <= set(reader.fieldnames or []):
            raise ValueError(f"{path}: expected columns {sorted(need)}, got {reader.fieldnames}")
        for n, row in enumerate(reader, 2):
            name = (row["filename"] or "").strip()
            if not name:
                continue
            events, error = files.setdefault(name, ([], None))
            onset, offset = (row["onset"] or "").strip(), (row["offset"] or "").strip()
            label = (row["event_label"] or "").strip()
            if not onset and not offset and not label:
                continue  # a file without events
            try:
                on, off = float(onset), float(offset)
                if not label or off <= on:
                    raise ValueError
            except ValueError:
                if error is None:
                    files[name] = (events, f"{path.name}:{n}: {onset!r} {offset!r} {label!r}")
                continue
            events.append((on, off, readable(label) if readable_labels else label))
    return files


def _file_cut(item: dict[str, Any], name: str, domain: str) -> Cut:
    if item["error"]:
        raise SkipItem("bad_metadata", item["error"])
    rec = read_recording(item["path"], item["id"])
    labels = sorted({e[2] for e in clip_events(item["events"], rec.duration)})
    return caption_cut(
        rec,
        item["id"],
        [],
        [],
        domain,
        name,
        {f"{domain}_events": labels},
        orig_id=item["filename"],
        metadata={"split": item["split"], "audio_key": youtube_audio_key(item["filename"])},
    )


def write_events_sidecar(
    cuts: CutSet, files: dict[str, tuple[list[Event], str | None]], out: Path
) -> tuple[int, int]:
    """Write the strong-label sidecar of ``cuts`` atomically; returns (rows, dropped events)."""
    rows, dropped = [], 0
    for cut in cuts:
        events = files[cut_custom(cut)["orig_id"]][0]
        kept = clip_events(events, cut.duration)
        dropped += len(events) - len(kept)
        rows.extend((cut.id, on, off, label) for on, off, label in kept)
    rows.sort()
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("cut_id\tonset\toffset\tevent_label\n")
        for cid, on, off, label in rows:
            f.write(f"{cid}\t{on:.3f}\t{off:.3f}\t{label}\n")
    os.replace(tmp, out)
    return len(rows), dropped


@register_corpus("sed_strong")
def prepare_sed_strong(
    corpus_dir: Path | str,
    output_dir: Path | str,
    tsv: str = "metadata/validation/validation.tsv",
    audio_dir: str = "audio/validation",
    split: str = "test",
    name: str = "sed_strong",
    domain: str = "sound",
    readable_labels: bool = True,
    **run: Unpack[PrepareRun],
) -> dict[str, CutSet]:
    """Strong-label SED TSV (DESED format) → ``<name>_cuts_<split>`` + events sidecar.

    Args:
        tsv: the strong-label TSV, relative to ``corpus_dir`` unless absolute.
        audio_dir: folder of the files named in the TSV, relative to ``corpus_dir``.
        split: split written (``valid``/``validation`` → ``dev``, ``eval`` → ``test``).
        name: manifest prefix and ``source`` (e.g. ``desed``).
        domain: domain of the cuts; the label task is ``<domain>_events``.
        readable_labels: ``Alarm_bell_ringing`` → ``alarm bell ringing``.
    """
    root = Path(corpus_dir)
    if domain not in DOMAINS:
        raise ValueError(f"domain {domain!r} is not one of {DOMAINS}")
    split_name = _SPLIT_ALIASES.get(split.lower())
    if split_name is None:
        raise ValueError(f"unknown split {split!r} (known: {', '.join(_SPLIT_ALIASES)})")
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ValueError(f"name {name!r} must be a plain file-name prefix")
    tsv_path = require_file(root / tsv, "strong-label TSV")
    audio = require_dir(root / audio_dir, "audio folder")
    files = read_strong_tsv(tsv_path, readable_labels)
    items = (
        {
            "id": f"{name}_{_ID_SAFE.sub('_', os.path.splitext(fname)[0])}",
            "filename": fname,
            "path": str(audio / fname),
            "events": events,
            "error": error,
            "split": split_name,
        }
        for fname, (events, error) in files.items()
    )
    summary = prepare_in_parts(
        items,
        functools.partial(_file_cut, name=name, domain=domain),
        manifest_path(output_dir, name, split_name),
        item_id=lambda x: x["filename"],
        desc=f"{name} {split_name}",
        **run,
    )
    cuts = lazy_manifests({split_name: summary})
    sidecar = events_path(output_dir, name, split_name)
    n_rows, dropped = write_events_sidecar(cuts[split_name], files, sidecar)
    log.info("%s: %d events of %d cuts", sidecar.name, n_rows, summary.num_cuts)
    if dropped:
        log.warning("%s: %d event(s) start after the end of their audio; dropped", tsv, dropped)
    return cuts
