"""A tiny fake AudioSetCaps in its real layout (Hugging Face ``Dataset/*.csv`` + local clips).

Layout written under ``root/audiosetcaps``::

    Dataset/AudioSetCaps_caption.csv          id,caption   (ids Y<youtube id>)
    Dataset/VGGSound_AudioSetCaps_caption.csv id,caption   (ids <yt>_<6-digit start>)
    Dataset/YouTube-8M_AudioSetCaps_caption.csv id,caption (ids <yt>_<start>_<length>)
    audio/audioset/Y---1_cCGK4M.flac, -0OkG0fLLkc.wav (stem without the Y)
    audio/vggsound/OxPnZzn1_L8_000883.wav, corruptclip_000010.wav (corrupt)
    audio/youtube8m/9eUrEyAR3xk_84_10.flac, -TL8Mp3xcUM_0_10.ogg, _7Xe9vD3Hpg_4_10.wav (0.2 s)
    balanced_train_segments.csv, audioset_train_strong.tsv   (AudioSet segment lists)
    heldout.txt                                              (one YouTube id → dev)

``Yb0RFKhbpFJA`` has no audio (missing), ``YzzEmptyCap1`` an empty caption (no_caption).
"""

from __future__ import annotations

import csv
from pathlib import Path

import soundfile as sf

from corpus_fixtures.signals import tone

PREPARE_OPTIONS: dict = {
    "audioset_segments": ("balanced_train_segments.csv", "audioset_train_strong.tsv"),
    "heldout_ids": "heldout.txt",
}

DETAILED = (
    "A solemn instrumental piece unfolds, featuring a cello and the tolling of a bell. "
    "The tempo is slow and deliberate, building intensity with each bell ring."
)
CAPTIONS = {
    "audioset": [
        ("Y---1_cCGK4M", DETAILED),
        ("Y-0OkG0fLLkc", "A woman speaks with a high-pitched voice."),
        ("Y-0OkG0fLLkc", "Speech by a woman indoors."),  # consecutive row of the same clip
        ("Yb0RFKhbpFJA", "A dog barks."),  # no audio: missing
        ("YzzEmptyCap1", "   "),  # empty caption: no_caption
    ],
    "vggsound": [
        ("OxPnZzn1_L8_000883", "An engine idles and a man talks over the rumble."),
        ("corruptclip_000010", "Birds chirp."),  # corrupt file: unreadable
    ],
    "youtube8m": [
        ("9eUrEyAR3xk_84_10", "Rain falls steadily on a tin roof while thunder rolls far away."),
        ("-TL8Mp3xcUM_0_10", "Music plays with drums and a guitar."),  # held out → dev
        ("_7Xe9vD3Hpg_4_10", "A click."),  # 0.2 s: too_short
    ],
}
FILES = {
    "audioset": "Dataset/AudioSetCaps_caption.csv",
    "vggsound": "Dataset/VGGSound_AudioSetCaps_caption.csv",
    "youtube8m": "Dataset/YouTube-8M_AudioSetCaps_caption.csv",
}
# (subset, file name, sample rate, channels, seconds)
AUDIO = [
    ("audioset", "Y---1_cCGK4M.flac", 16000, 1, 2.0),
    ("audioset", "-0OkG0fLLkc.wav", 32000, 2, 1.5),
    ("vggsound", "OxPnZzn1_L8_000883.wav", 16000, 1, 1.0),
    ("youtube8m", "9eUrEyAR3xk_84_10.flac", 22050, 1, 2.5),
    ("youtube8m", "-TL8Mp3xcUM_0_10.ogg", 16000, 1, 1.0),
    ("youtube8m", "_7Xe9vD3Hpg_4_10.wav", 16000, 1, 0.2),
]


def write_fixture(root: Path) -> Path:
    """Write the fake corpus under ``root`` and return its corpus_dir."""
    corpus = Path(root) / "audiosetcaps"
    for subset, rows in CAPTIONS.items():
        path = corpus / FILES[subset]
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["id", "caption"])
            writer.writerows(rows)
    for k, (subset, name, sr, ch, sec) in enumerate(AUDIO):
        path = corpus / "audio" / subset / name
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, tone(sec, sr, ch, 300.0 + 50 * k), sr)
    (corpus / "audio" / "vggsound" / "corruptclip_000010.wav").write_bytes(b"RIFF\x00garbage" * 8)
    (corpus / "balanced_train_segments.csv").write_text(
        "# Segments csv created Sun Mar  5 10:54:31 2017\n"
        "# num_ytids=2, num_segs=2, num_unique_labels=2, num_positive_labels=2\n"
        "# YTID, start_seconds, end_seconds, positive_labels\n"
        '---1_cCGK4M, 30.000, 40.000, "/m/0l14jd,/m/0395lw"\n'
        'zzEmptyCap1, 0.000, 10.000, "/m/09x0r"\n'
    )
    (corpus / "audioset_train_strong.tsv").write_text(
        "segment_id\tstart_time_seconds\tend_time_seconds\tlabel\n"
        "-0OkG0fLLkc_120000\t0.000\t1.500\t/m/09x0r\n"
    )
    (corpus / "heldout.txt").write_text("# held-out clips\n-TL8Mp3xcUM\n")
    return corpus
