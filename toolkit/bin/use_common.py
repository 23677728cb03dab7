"""Plumbing of the model-use CLIs (``toolkit-zeroshot``, ``-caption``, ``-index``, ``-search``):
inputs (files and folders), chunked reading with skip-and-count, TSV/JSONL output."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from torch import Tensor
from tqdm import tqdm

from toolkit.audio import AudioLoadError
from toolkit.config import ConfigError

log = logging.getLogger("toolkit.use")
CHUNK = 16  # files read and encoded together


def add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", "-m", required=True, help="run dir, exported model dir or .pt")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--json", action="store_true", help="JSON lines instead of TSV")
    p.add_argument("--output", "-o", help="write the results here (default: stdout)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def audio_inputs(items: Sequence[str]) -> list[Path]:
    """Files as given and the audio files under each folder (recursively, sorted)."""
    from toolkit.index import list_audio_files

    out: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = list_audio_files(p)
            if not found:
                log.warning("%s: no audio files in this folder", p)
            out += found
        else:
            out.append(p)  # a missing file is reported (and skipped) when it is read
    if not out:
        raise ConfigError("no audio files given (FILES or a DIR)")
    return out


def read_chunks(
    model: Any, paths: Sequence[Path], progress: bool, skipped: dict[str, str]
) -> Iterator[tuple[list[str], list[Tensor]]]:
    """``(paths read, mono audio at the model's rate)`` per chunk of :data:`CHUNK` files; files
    that cannot be read go to ``skipped`` (path → reason) with a warning."""
    bar = tqdm(total=len(paths), unit="file", disable=not progress, file=sys.stderr)
    for i in range(0, len(paths), CHUNK):
        ok, audio = [], []
        for p in paths[i : i + CHUNK]:
            try:
                audio.append(model.load_audio(p))
                ok.append(str(p))
            except AudioLoadError as e:
                skipped[str(p)] = str(e)
                log.warning("skipped: %s", e)
        bar.update(len(paths[i : i + CHUNK]))
        if ok:
            yield ok, audio
    bar.close()


def open_output(path: str | None) -> TextIO:
    return open(path, "w", encoding="utf-8") if path else sys.stdout


def write_record(out: TextIO, record: dict[str, Any], as_json: bool, columns: list[str]) -> None:
    """One result: a JSON line, or a TSV row of ``columns`` (floats with 6 digits)."""
    if as_json:
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
        return
    cells = [f"{v:.6f}" if isinstance(v, float) else str(v) for v in (record[c] for c in columns)]
    out.write("\t".join(c.replace("\t", " ").replace("\n", " ") for c in cells) + "\n")


def run_over_files(
    args: argparse.Namespace,
    model: Any,
    columns: list[str],
    results: Callable[[list[str], list[Tensor]], list[dict[str, Any]]],
) -> int:
    """Read ``args.inputs`` chunk by chunk, write ``results(paths, audio)`` records (TSV with a
    header, or JSON lines with ``--json``) to ``args.output`` or stdout, then the summary."""
    paths = audio_inputs(args.inputs)
    skipped: dict[str, str] = {}
    out = open_output(args.output)
    done = 0
    try:
        if not args.json:
            out.write("\t".join(columns) + "\n")
        for ok, audio in read_chunks(model, paths, not args.no_progress, skipped):
            for rec in results(ok, audio):
                write_record(out, rec, args.json, columns)
            done += len(ok)
    finally:
        if out is not sys.stdout:
            out.close()
    summary(done, skipped)
    return 0


def summary(done: int, skipped: dict[str, str]) -> None:
    """The closing line on stderr: counts, and the skipped files with their reasons."""
    print(f"done: {done} files, {len(skipped)} skipped", file=sys.stderr)
    for path, why in skipped.items():
        print(f"  skipped {path}: {why}", file=sys.stderr)
