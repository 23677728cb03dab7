"""A tiny fake MagnaTagATune: ``annotations_final.csv`` (TAB-separated, all fields quoted,
``clip_id``, tag columns, ``mp3_path``) and real mp3 files under ``<0-f>/``.

Real: 25,863 clips of 29.1 s, 16 kHz mono mp3, 188 tags. Here: 15 of the real tag names and
1.5 s mp3s (libsndfile writes and reads MPEG layer III). Listed but bad: clip 15's mp3 is
0 bytes (as a few in the real archive), clip 31's mp3 is missing. Train tag counts: classical 3,
fast 2, slow 2 (fast's column comes first), the rest 1; ``female vocal`` is frequent only in
test, so it is not among the train top-3.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 16000
SECONDS = 1.5
TAGS = ["no voice", "singer", "duet", "plucking", "hard rock", "world", "harpsichord",
        "classical", "fast", "guitar", "techno", "strings", "slow", "piano", "female vocal"]  # fmt: skip
# clip_id, mp3_path, tags, audio state
CLIPS = [
    (2, "0/american_bach_soloists-j_s__bach_solo_cantatas-01-bwv54__i_aria-0-29.mp3",
     {"slow", "strings", "classical"}, "ok"),
    (6, "3/jade_leary-retrospective-02-machine_city-30-59.mp3", {"techno", "fast"}, "ok"),
    (10, "a/lizzi-love_and_you_and_i-05-stone_road-59-88.mp3", {"guitar", "hard rock", "fast"}, "ok"),
    (14, "b/kiss_of_mystery-harpsichord_works-03-suite_in_d-0-29.mp3",
     {"harpsichord", "classical", "slow"}, "ok"),
    (15, "b/norine_braun-now_and_zen-08-gently-117-146.mp3", {"classical"}, "empty"),
    (20, "c/william_brooks-bitter_circus-01-the_hanging_of_allen_scott_johnson-0-29.mp3",
     {"piano", "slow"}, "ok"),
    (21, "c/mediva-viva_mediva-02-ondas_do_mar-88-117.mp3", set(), "ok"),
    (30, "d/tim_rayborn-the_path_beyond-14-taqsim_ud-30-59.mp3",
     {"female vocal", "singer", "piano"}, "ok"),
    (31, "e/electric_frankenstein-conquers_the_world-04-demolition_joyride-0-29.mp3",
     {"female vocal", "singer"}, "missing"),
    (32, "f/magnatune-classical-17-aria-146-175.mp3", {"female vocal", "world"}, "ok"),
]  # fmt: skip
PREPARE_OPTIONS: dict = {}


def write_fixture(root: Path) -> Path:
    """Write the fake MagnaTagATune under ``root/magnatagatune`` and return that corpus_dir."""
    corpus = Path(root) / "magnatagatune"
    corpus.mkdir(parents=True, exist_ok=True)
    with open(corpus / "annotations_final.csv", "w", newline="") as f:
        w = csv.writer(f, delimiter="\t", quoting=csv.QUOTE_ALL, lineterminator="\n")
        w.writerow(["clip_id", *TAGS, "mp3_path"])
        for k, (clip_id, mp3, tags, state) in enumerate(CLIPS):
            w.writerow([clip_id, *[int(t in tags) for t in TAGS], mp3])
            path = corpus / mp3
            path.parent.mkdir(parents=True, exist_ok=True)
            if state == "empty":
                path.write_bytes(b"")
            elif state == "ok":
                t = np.arange(int(SR * SECONDS)) / SR
                x = 0.3 * np.sin(2 * np.pi * (200 + 40 * k) * t)
                sf.write(path, x.astype(np.float32), SR, format="MP3")
    return corpus
