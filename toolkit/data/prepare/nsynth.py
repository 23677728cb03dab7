"""NSynth (4 s single musical notes, 16 kHz) → cut manifests (label-only evaluation corpus).

Reads the json/wav release: ``nsynth-{train,valid,test}/examples.json`` (one JSON object keyed by
``note_str``, e.g. ``"bass_synthetic_033-022-050"``, whose values hold ``instrument_family_str``,
``instrument_source_str``, ``pitch`` (MIDI number), ``velocity``, ``qualities_str`` ...) and the
notes ``nsynth-<split>/audio/<note_str>.wav``. The train ``examples.json`` holds ~290k entries,
so it is parsed incrementally (one entry at a time), never loaded whole.

Splits: ``nsynth-train`` → ``train``, ``nsynth-valid`` → ``dev``, ``nsynth-test`` → ``test``
(a split whose folder is absent is left out with a warning). Cut id ``nsynth_<note_str>``, no
caption; labels:

* ``music_instrument``: the instrument family (``bass``, ``brass``, ``flute``, ``guitar``,
  ``keyboard``, ``mallet``, ``organ``, ``reed``, ``string``, ``synth lead``, ``vocal``);
* ``music_source``: ``acoustic``, ``electronic`` or ``synthetic``;
* ``music_pitch``: the MIDI pitch as a note name with octave, MIDI 60 = ``C4``
  (``C``, ``C#``, ``D`` ... ``B``; 21 = ``A0``, 108 = ``C8``);
* ``music_qualities`` (multi-label, may be empty): the note qualities (``bright``, ``dark``,
  ``distortion``, ``fast decay``, ``long release``, ``multiphonic``, ``nonlinear env``,
  ``percussive``, ``reverb``, ``tempo-synced``).

Underscores in values become spaces.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
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
    readable_label,
    register_corpus,
    whole_file_cut,
)

log = logging.getLogger(__name__)

NAME = "nsynth"
SPLIT_DIRS = {"train": "nsynth-train", "dev": "nsynth-valid", "test": "nsynth-test"}
NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def midi_to_note(pitch: int) -> str:
    """MIDI note number → note name with octave (60 → ``"C4"``, 69 → ``"A4"``, 21 → ``"A0"``)."""
    if not 0 <= pitch <= 127:
        raise ValueError(f"MIDI pitch {pitch} is outside 0..127")
    return f"{NOTE_NAMES[pitch % 12]}{pitch // 12 - 1}"


def iter_json_object(path: Path | str, chunk_chars: int = 1 << 20) -> Iterator[tuple[str, Any]]:
    """Yield the ``(key, value)`` pairs of a top-level JSON object one at a time.

    Reads ``chunk_chars`` characters at a time, so memory is bounded by the largest value plus
    one chunk whatever the file size.

    Raises:
        ValueError: the file is not a JSON object (message names the file and offset).
    """
    decoder = json.JSONDecoder()
    with open(path, encoding="utf-8") as f:
        buf, pos, eof, offset = "", 0, False, 0

        def more() -> bool:
            nonlocal buf, pos, eof, offset
            if eof:
                return False
            chunk = f.read(chunk_chars)
            offset += pos
            buf, pos = buf[pos:] + chunk, 0
            eof = not chunk
            return bool(chunk)

        def skip_ws() -> str:
            nonlocal pos
            while True:
                while pos < len(buf) and buf[pos] in " \t\r\n":
                    pos += 1
                if pos < len(buf):
                    return buf[pos]
                if not more():
                    return ""

        def value() -> Any:
            nonlocal pos
            while True:
                try:
                    obj, end = decoder.raw_decode(buf, pos)
                    if end < len(buf) or eof:  # a value cut at the chunk end may parse short
                        pos = end
                        return obj
                except json.JSONDecodeError as e:
                    if eof:
                        raise ValueError(f"{path}: invalid JSON at char {offset + e.pos}") from None
                more()  # at the end of the file the next try returns or raises

        def bad(what: str) -> ValueError:
            return ValueError(f"{path}: expected {what} at char {offset + pos}")

        if skip_ws() != "{":
            raise bad("a JSON object '{'")
        pos += 1
        first = True
        while True:
            c = skip_ws()
            if c == "}":
                return
            if not first:
                if c != ",":
                    raise bad("',' or '}'")
                pos += 1
                skip_ws()
            first = False
            key = value()
            if not isinstance(key, str):
                raise bad("a string key")
            if skip_ws() != ":":
                raise bad("':'")
            pos += 1
            skip_ws()
            yield key, value()


def _note_cut(item: dict[str, Any]) -> Cut:
    """One NSynth note → cut with instrument/source/pitch/qualities labels."""
    note, meta = item["note_str"], item["meta"]
    try:
        labels: dict[str, Any] = {
            "music_instrument": readable_label(meta["instrument_family_str"]),
            "music_source": readable_label(meta["instrument_source_str"]),
            "music_pitch": midi_to_note(int(meta["pitch"])),
            "music_qualities": [readable_label(q) for q in meta.get("qualities_str") or []],
        }
    except (KeyError, TypeError, ValueError) as e:
        raise SkipItem("bad_metadata", f"{note}: {type(e).__name__}: {e}") from None
    path = find_audio(item["audio_dir"], note)
    return whole_file_cut(
        path, f"{NAME}_{note}", "music", NAME, labels, orig_id=note, split=item["split"]
    )


def _notes(split_dir: Path, split: str) -> Iterator[dict[str, Any]]:
    for note, meta in iter_json_object(split_dir / "examples.json"):
        yield {
            "note_str": note,
            "meta": meta,
            "split": split,
            "audio_dir": str(split_dir / "audio"),
        }


@register_corpus(NAME)
def prepare_nsynth(
    corpus_dir: Path | str,
    output_dir: Path | str,
    **run: Unpack[PrepareRun],
) -> dict[str, CutSet]:
    """NSynth → ``nsynth_cuts_{train,dev,test}`` (instrument family/source/pitch/qualities)."""
    root = Path(corpus_dir)
    present = {s: root / d for s, d in SPLIT_DIRS.items() if (root / d / "examples.json").is_file()}
    if not present:
        raise FileNotFoundError(
            f"no nsynth-{{train,valid,test}}/examples.json under {root} (see docs/corpora/nsynth.md)"
        )
    for split in sorted(set(SPLIT_DIRS) - set(present)):
        log.warning(
            "NSynth: %s/examples.json not found; split %s skipped", SPLIT_DIRS[split], split
        )
    return prepare_splits(
        NAME,
        output_dir,
        present,
        lambda split: _notes(present[split], split),
        _note_cut,
        item_id=lambda x: x["note_str"],
        **run,
    )
