"""A tiny fake CREMA-D in the real layout: ``AudioWAV/<Actor>_<Sentence>_<Emotion>_<Level>.wav``
(16 kHz mono 16-bit), ``SentenceFilenames.csv`` and ``VideoDemographics.csv``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

SR = 16000
PREPARE_OPTIONS: dict = {}
ACTORS = ("1001", "1002", "1003", "1004", "1005", "1006")
SEX = {
    "1001": "Male",
    "1002": "Female",
    "1003": "Female",
    "1004": "Female",
    "1005": "Male",
    "1006": "Female",
}
# two clips per actor: one graded IEO clip and one unspecified-level clip
CLIPS = [
    f"{a}_{s}_{e}_{lvl}"
    for k, a in enumerate(ACTORS)
    for s, e, lvl in (
        ("IEO", ("ANG", "HAP", "SAD")[k % 3], ("LO", "MD", "HI")[k % 3]),
        (("DFA", "TIE", "WSI")[k % 3], ("DIS", "FEA", "NEU")[k % 3], "XX"),
    )
]
MISSING = "1002_ITS_NEU_XX"  # listed in SentenceFilenames.csv, no file
EMPTY = "1005_MTI_SAD_XX"  # a 0-byte file (the real corpus has one such file)
BAD_NAME = "1003_XYZ_ANG_XX"  # listed, unknown sentence code


def write_fixture(root: Path) -> Path:
    """Write the fixture under ``root/crema-d`` and return that corpus_dir."""
    corpus = Path(root) / "crema-d"
    audio = corpus / "AudioWAV"
    audio.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for k, stem in enumerate(CLIPS):
        n = int(SR * (0.5 + 0.05 * k))
        t = np.arange(n) / SR
        x = 0.2 * np.sin(2 * np.pi * (150 + 10 * k) * t) + 0.01 * rng.standard_normal(n)
        sf.write(audio / f"{stem}.wav", x, SR, subtype="PCM_16")
    (audio / f"{EMPTY}.wav").write_bytes(b"")
    listed = [*CLIPS, MISSING, EMPTY, BAD_NAME]
    rows = "".join(f"{k + 1},{stem}\n" for k, stem in enumerate(listed))
    (corpus / "SentenceFilenames.csv").write_text("Stimulus_Number,Filename\n" + rows)
    demo = "ActorID,Age,Sex,Race,Ethnicity\n" + "".join(
        f"{a},{30 + k},{SEX[a]},Caucasian,Not Hispanic\n" for k, a in enumerate(ACTORS)
    )
    (corpus / "VideoDemographics.csv").write_text(demo)
    return corpus
