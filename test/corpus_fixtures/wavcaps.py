"""A tiny fake WavCaps in its real layout (Hugging Face ``json_files/`` + unpacked Zip_files).

Layout written under ``root/wavcaps``::

    json_files/AudioSet_SL/as_final.json         {"num_captions_per_audio": 1, "data": [...]}
    json_files/BBC_Sound_Effects/bbc_final.json
    json_files/FreeSound/fsd_final.json
    json_files/SoundBible/sb_final.json          a bare list (as in the GitHub copy)
    json_files/blacklist/blacklist_exclude_test_ac.json
    mnt/fast/nobackup/scratch4weeks/xm00178/WavCaps/data/waveforms/
        AudioSet_SL_flac/Yb0RFKhbpFJA.flac, Y--PJHxphWEs.flac, YvfY_TJq7n_U.flac
        BBC_Sound_Effects_flac/07066104.flac            (07066105 missing)
        FreeSound_flac/180913.flac, 180914.flac (corrupt), 180915.flac (empty caption)
    audio/SoundBible/2219.flac, 2218.flac (0.2 s)
    balanced_train_segments.csv                  (AudioSet starts for audio_key)
"""

from __future__ import annotations

import json
from pathlib import Path

import soundfile as sf

from corpus_fixtures.signals import tone

ZIP_DIR = "mnt/fast/nobackup/scratch4weeks/xm00178/WavCaps/data/waveforms"
PREPARE_OPTIONS: dict = {
    "audioset_segments": ("balanced_train_segments.csv",),
    "blacklist": "json_files/blacklist/blacklist_exclude_test_ac.json",
}

AS = [
    {"id": "Yb0RFKhbpFJA.wav", "caption": "Wind and a man speaking are heard.",
     "audio": "wav_path", "duration": 2.0},
    {"id": "Y--PJHxphWEs.wav", "caption": "A crowd cheers.", "audio": "wav_path",
     "duration": 1.0},
    {"id": "YvfY_TJq7n_U.wav", "caption": "Ducks quack.", "audio": "wav_path",
     "duration": 1.0},  # blacklisted (AudioCaps test clip)
]  # fmt: skip
BBC = [
    {"description": "Timber & Wood - Rip saw, carpenters' workshop.", "category": "['Machines']",
     "caption": "Someone is using a rip saw in a carpenter's workshop.", "id": "07066104",
     "duration": 3.0, "audio": "wav_path",
     "download_link": "https://sound-effects-media.bbcrewind.co.uk/zip/07066104.wav.zip"},
    {"description": "Rain on a roof.", "category": "['Weather']", "caption": "Rain falls.",
     "id": "07066105", "duration": 2.0, "audio": "wav_path"},  # no audio file: missing
]  # fmt: skip
FSD = [
    {"id": "180913", "file_name": "UK Mello.wav", "href": "/people/Tempouser/sounds/180913/",
     "tags": ["ringtone"], "description": "Standard ringtone.", "author": "Tempouser",
     "duration": 1.0, "caption": "A traditional ringtone is playing.", "audio": "wav_path"},
    {"id": "180914", "caption": "A door creaks.", "duration": 1.0, "audio": "wav_path"},  # corrupt
    {"id": "180915", "caption": "", "duration": 1.0, "audio": "wav_path"},  # no caption
    {"caption": "A record without an id.", "duration": 1.0, "audio": "wav_path"},  # bad metadata
]  # fmt: skip
SB = [
    {"title": "Airplane Landing Airport", "description": "Large airplane landing.",
     "author": "Daniel Simion", "href": "2219-Airplane-Landing-Airport.html",
     "caption": "An airplane is landing.", "id": "2219", "duration": 1.5},
    {"title": "Service Bell Help", "description": "Customer ringing service bell.",
     "author": "Daniel Simion", "href": "2218-Service-Bell-Help.html",
     "caption": "Someone is ringing a bell.", "id": "2218", "duration": 0.2},  # too short
]  # fmt: skip
# (folder, file, sample rate, channels, seconds)
AUDIO = [
    (f"{ZIP_DIR}/AudioSet_SL_flac", "Yb0RFKhbpFJA.flac", 32000, 1, 2.0),
    (f"{ZIP_DIR}/AudioSet_SL_flac", "Y--PJHxphWEs.flac", 32000, 1, 1.0),
    (f"{ZIP_DIR}/AudioSet_SL_flac", "YvfY_TJq7n_U.flac", 32000, 1, 1.0),
    (f"{ZIP_DIR}/BBC_Sound_Effects_flac", "07066104.flac", 48000, 2, 3.0),
    (f"{ZIP_DIR}/FreeSound_flac", "180913.flac", 44100, 1, 1.0),
    (f"{ZIP_DIR}/FreeSound_flac", "180915.flac", 44100, 1, 1.0),
    ("audio/SoundBible", "2219.flac", 44100, 1, 1.5),
    ("audio/SoundBible", "2218.flac", 44100, 1, 0.2),
]


def write_fixture(root: Path) -> Path:
    """Write the fake corpus under ``root`` and return its corpus_dir."""
    corpus = Path(root) / "wavcaps"
    metadata = {
        "AudioSet_SL/as_final.json": {"num_captions_per_audio": 1, "data": AS},
        "BBC_Sound_Effects/bbc_final.json": {"num_captions_per_audio": 1, "data": BBC},
        "FreeSound/fsd_final.json": {"num_captions_per_audio": 1, "data": FSD},
        "SoundBible/sb_final.json": SB,
        "blacklist/blacklist_exclude_test_ac.json": {
            "AudioSet": ["YvfY_TJq7n_U.wav"],
            "FreeSound": [],
        },  # fmt: skip
    }
    for rel, data in metadata.items():
        path = corpus / "json_files" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=1))
    for k, (folder, name, sr, ch, sec) in enumerate(AUDIO):
        path = corpus / folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, tone(sec, sr, ch, 250.0 + 40 * k), sr)
    (corpus / ZIP_DIR / "FreeSound_flac" / "180914.flac").write_bytes(b"fLaC" + b"\x00" * 64)
    (corpus / "balanced_train_segments.csv").write_text(
        "# Segments csv created Sun Mar  5 10:54:31 2017\n"
        "# num_ytids=1, num_segs=1, num_unique_labels=2, num_positive_labels=2\n"
        "# YTID, start_seconds, end_seconds, positive_labels\n"
        'b0RFKhbpFJA, 30.000, 40.000, "/m/03m9d0z,/m/09x0r"\n'
    )
    return corpus
