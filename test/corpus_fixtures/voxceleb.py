"""A tiny fake VoxCeleb1 (and VoxCeleb2) in the real layout: ``wav/<id>/<yt>/<utt>.wav``,
``iden_split.txt`` and a TAB-separated ``vox1_meta.csv``; 16 kHz mono 16-bit PCM."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

SR = 16000
PREPARE_OPTIONS: dict = {}

# speaker, youtube id, utterance, iden split code, seconds
UTTERANCES = [
    ("id10001", "1zcIwhmdeo4", "00001", 1, 1.0),
    ("id10001", "1zcIwhmdeo4", "00002", 1, 0.8),
    ("id10001", "7w0IBEWc9Qw", "00001", 2, 0.9),
    ("id10001", "Y8hIVOBuels", "00003", 3, 1.2),
    ("id10002", "6WO410QOeuo", "00001", 1, 1.1),
    ("id10002", "C7k7C-PDvAA", "00004", 2, 0.7),
    ("id10002", "xTV-jFAUKcw", "00002", 3, 1.0),
    ("id10003", "na8-QEFmj44", "00003", 1, 1.3),
]
MISSING = ("id10003", "_JpHD6VnJ3I", "00001", 3)  # listed, no file
CORRUPT = ("id10003", "bDxy7bnj_bs", "00002", 2)  # listed, not a wav
MALFORMED_LINE = "2 id10003/no_utterance_name\n"  # listed with a bad path
META = (
    "VoxCeleb1 ID\tVGGFace1 ID\tGender\tNationality\tSet\n"
    "id10001\tA.J._Buckley\tm\tIreland\tdev\n"
    "id10002\tAJ_Lee\tf\tUSA\tdev\n"
    "id10003\tAaron_Tveit\tm\tUSA\ttest\n"
)


def _tone(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * SR))) / SR
    return 0.3 * np.sin(2 * np.pi * (120 + 40 * seed) * t) + 0.01 * rng.standard_normal(t.size)


def write_fixture(root: Path) -> Path:
    """Write the VoxCeleb1 fixture under ``root/voxceleb1`` and return that corpus_dir."""
    corpus = Path(root) / "voxceleb1"
    lines = []
    for k, (spk, yt, utt, code, seconds) in enumerate(UTTERANCES):
        path = corpus / "wav" / spk / yt / f"{utt}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, _tone(seconds, k), SR, subtype="PCM_16")
        lines.append(f"{code} {spk}/{yt}/{utt}.wav\n")
    spk, yt, utt, code = MISSING
    lines.append(f"{code} {spk}/{yt}/{utt}.wav\n")
    spk, yt, utt, code = CORRUPT
    bad = corpus / "wav" / spk / yt / f"{utt}.wav"
    bad.parent.mkdir(parents=True, exist_ok=True)
    bad.write_bytes(b"this is not a RIFF file" * 10)
    lines.append(f"{code} {spk}/{yt}/{utt}.wav\n")
    lines.append(MALFORMED_LINE)
    (corpus / "iden_split.txt").write_text("".join(lines))
    (corpus / "vox1_meta.csv").write_text(META)
    return corpus


V2_META = (
    "VoxCeleb2 ID ,VGGFace2 ID ,Gender ,Set \n"
    "id00012 ,n000012 ,m ,dev \n"
    "id00015 ,n000015 ,f ,dev \n"
)


def write_fixture_v2(root: Path) -> Path:
    """A VoxCeleb2 dev part converted to wav in place (``dev/aac/<id>/<yt>/<utt>.wav``) plus
    one unreadable ``.m4a``; returns the corpus_dir (use ``version=2``)."""
    corpus = Path(root) / "voxceleb2"
    k = 0
    for spk in ("id00012", "id00015"):
        for v, yt in enumerate(("21Uxsk56VDQ", "2DLq_Kkc1r8", "Iu7LK3cXq8I", "zlsY4Ii6gNE")):
            for utt in ("00001", "00002")[: 1 + v % 2]:
                path = corpus / "dev" / "aac" / spk / yt / f"{utt}.wav"
                path.parent.mkdir(parents=True, exist_ok=True)
                sf.write(path, _tone(0.5, k), SR, subtype="PCM_16")
                k += 1
    bad = corpus / "dev" / "aac" / "id00015" / "zlsY4Ii6gNE" / "00009.m4a"
    bad.write_bytes(b"\x00\x00\x00\x18ftypM4A " + b"\x00" * 64)
    (corpus / "vox2_meta.csv").write_text(V2_META)
    return corpus
