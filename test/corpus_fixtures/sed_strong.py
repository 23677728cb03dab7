"""A tiny fake DESED-style strongly labelled set: ``metadata/validation/validation.tsv``
(``filename onset offset event_label``, TAB-separated) and ``audio/validation/<filename>``
(44.1 kHz mono 16-bit wav, 1.5 s instead of 10 s to stay small)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

SR = 44100
SECONDS = 1.5
PREPARE_OPTIONS: dict = {}

A = "Y--0w1YA1Hm4_30.000_40.000.wav"  # speech + dog, one event runs past the end
B = "Y0AZ9XYzFXgQ_10.000_20.000.wav"  # alarm + an event after the end (dropped)
C = "Y1a2b3c4d5e6_0.000_10.000.wav"  # no events
D = "0.wav"  # synthetic-soundscape style name: no audio_key
MISSING = "Y2b3c4d5e6f7_5.000_15.000.wav"
CORRUPT = "Y3c4d5e6f7g8_0.000_10.000.wav"
BAD_ROW = "Y4d5e6f7g8h9_0.000_10.000.wav"  # file exists, one row has onset "abc"
ROWS = [
    (A, "0.000", "0.600", "Speech"),
    (B, "0.200", "1.000", "Alarm_bell_ringing"),
    (A, "0.400", "0.900", "Dog"),
    (C, "", "", ""),
    (D, "0.100", "1.400", "Blender"),
    (A, "1.100", "2.500", "Speech"),
    (B, "3.000", "4.000", "Alarm_bell_ringing"),
    (MISSING, "0.000", "1.000", "Cat"),
    (CORRUPT, "0.500", "1.000", "Dishes"),
    (BAD_ROW, "abc", "1.000", "Frying"),
    (BAD_ROW, "0.100", "1.000", "Frying"),
]
# expected sidecar rows (cut-relative, clipped to the 1.5 s audio)
EXPECTED_EVENTS = {
    A: [(0.0, 0.6, "speech"), (0.4, 0.9, "dog"), (1.1, 1.5, "speech")],
    B: [(0.2, 1.0, "alarm bell ringing")],
    C: [],
    D: [(0.1, 1.4, "blender")],
}


def write_fixture(root: Path) -> Path:
    """Write the fixture under ``root/desed`` and return that corpus_dir."""
    corpus = Path(root) / "desed"
    audio = corpus / "audio" / "validation"
    audio.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in (A, B, C, D, BAD_ROW):
        sf.write(audio / name, 0.1 * rng.standard_normal(int(SR * SECONDS)), SR, subtype="PCM_16")
    (audio / CORRUPT).write_bytes(b"\x00" * 200)
    meta = corpus / "metadata" / "validation"
    meta.mkdir(parents=True, exist_ok=True)
    lines = ["filename\tonset\toffset\tevent_label\n"] + ["\t".join(r) + "\n" for r in ROWS]
    (meta / "validation.tsv").write_text("".join(lines))
    return corpus
