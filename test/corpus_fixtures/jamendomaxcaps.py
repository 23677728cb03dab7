"""A tiny fake JamendoMaxCaps: ``final_caption30sec.jsonl`` (id, caption, start_time, end_time per
30-s segment), two dated Jamendo-API metadata shards (one track in both) and ``mp3_files/<id>.mp3``
(44.1 kHz MP3). Includes a missing and a corrupt MP3, a track whose only segment lies beyond its
end, a caption row without times and an empty caption."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf

PREPARE_OPTIONS: dict = {}
SR = 44100

# track id -> (seconds or None = missing / -1 = corrupt, [(start, end, caption)])
TRACKS = {
    1001: (
        40.0,
        [
            (0.0, 30.0, "An energetic electronic track with pulsing synthesizers."),
            (30.0, 60.0, "The synth melody fades out over a steady beat."),
        ],
    ),
    1002: (35.0, [(None, None, "A calm solo piano piece in a slow tempo.")]),
    1003: (None, [(0.0, 30.0, "A rock song with distorted guitars.")]),
    1004: (-1, [(0.0, 30.0, "A jazz trio.")]),
    1005: (5.0, [(30.0, 60.0, "A short ambient outro.")]),
    1006: (3.0, [(0.0, 30.0, "  ")]),
}


def _jamendo_record(tid: int, genres: list[str], speed: str, vartags: list[str]) -> dict:
    return {
        "id": str(tid),
        "name": f"Track {tid}",
        "duration": 40,
        "artist_id": str(tid // 2),
        "artist_name": "Some Artist",
        "releasedate": "2008-01-01",
        "audio": f"https://prod-1.storage.jamendo.com/?trackid={tid}&format=mp31",
        "audiodownload": "",
        "license_ccurl": "http://creativecommons.org/licenses/by-sa/3.0/",
        "musicinfo": {
            "vocalinstrumental": "instrumental",
            "lang": "",
            "gender": "",
            "acousticelectric": "electric",
            "speed": speed,
            "tags": {"genres": genres, "instruments": ["synthesizer"], "vartags": vartags},
        },
    }


def write_fixture(root: Path) -> Path:
    """Write the corpus under ``root/jamendomaxcaps`` and return that folder."""
    corpus = Path(root) / "jamendomaxcaps"
    audio = corpus / "mp3_files"
    audio.mkdir(parents=True, exist_ok=True)
    with open(corpus / "final_caption30sec.jsonl", "w", encoding="utf-8") as f:
        for tid, (seconds, rows) in TRACKS.items():
            for start, end, caption in rows:
                f.write(
                    json.dumps(
                        {"id": tid, "caption": caption, "start_time": start, "end_time": end}
                    )
                    + "\n"
                )
            if seconds is None:
                continue
            if seconds < 0:
                (audio / f"{tid}.mp3").write_bytes(
                    b"ID3\x03\x00\x00\x00\x00\x00\x00" + b"\x00" * 64
                )
                continue
            t = np.arange(int(seconds * SR)) / SR
            tone = 0.2 * np.sin(2 * np.pi * (200 + tid % 10 * 50) * t)
            sf.write(audio / f"{tid}.mp3", tone.astype(np.float32), SR, format="MP3")
    shards = {
        "2008-01-01.jsonl": [
            _jamendo_record(1001, ["pop"], "low", []),
            _jamendo_record(1002, ["classical"], "verylow", ["calm", "relaxed"]),
        ],
        "2008-01-02.jsonl": [
            _jamendo_record(1001, ["electronic", "ambient"], "high", ["energetic"]),
            _jamendo_record(1005, ["ambient"], "medium", []),
        ],
    }
    for name, records in shards.items():
        with open(corpus / name, "w", encoding="utf-8") as f:
            for r in records:
                f.write(json.dumps(r) + "\n")
    return corpus
