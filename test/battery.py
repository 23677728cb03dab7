"""The bad-input battery: a corpus of good clips mixed with every kind of damage real archives
have, as a labelled folder tree and as a CSV listing, with what the toolkit must do with each.

``make_battery(root)`` writes ``root/tree/{train,test}/<label>/...`` and ``root/listing.csv``
(paths relative to ``root``) and returns a :class:`Battery`: the good files (kept, exactly), the
bad ones with the skip reason expected at prepare (folder and listing), and the listing lines
of the bad rows. Used by test/test_battery.py.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

LABELS = ("dog", "rain")
SR = 16000


@dataclass
class Battery:
    root: Path
    tree: Path
    listing: Path
    good: dict[str, set[str]] = field(default_factory=dict)  # split -> tree-relative paths
    bad: dict[str, str] = field(default_factory=dict)  # tree-relative path -> prepare reason
    listing_bad: dict[int, str] = field(default_factory=dict)  # listing line -> reason
    listing_good: int = 0  # rows that must become clips
    long_clips: set[str] = field(default_factory=set)  # kept, cut into segments


def _tone(seconds: float, sr: int = SR, seed: int = 0, freq: float = 440.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(t.size)).astype(
        np.float32
    )


def _mp3_works(tmp: Path) -> bool:
    from lhotse import Recording

    try:
        sf.write(tmp / "probe.mp3", np.zeros(8000, np.float32), SR, format="MP3")
        ok = Recording.from_file(tmp / "probe.mp3").load_audio().size > 0
    except Exception:
        ok = False
    (tmp / "probe.mp3").unlink(missing_ok=True)
    return ok


def make_battery(root: Path) -> Battery:
    root.mkdir(parents=True, exist_ok=True)
    tree = root / "tree"
    b = Battery(root, tree, root / "listing.csv")
    good: dict[str, set[str]] = {"train": set(), "test": set()}

    def put(rel: str, x: np.ndarray, sr: int = SR, **opts) -> str:
        path = tree / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, x, sr, **opts)
        return rel

    # good clips: several per label and split, in the usual and the unusual formats
    for k, label in enumerate(LABELS):
        for i in range(6):
            good["train"].add(put(f"train/{label}/{label}_{i}.wav", _tone(1.0 + 0.1 * i, seed=i,
                                  freq=300 + 400 * k)))  # fmt: skip
        for i in range(2):
            good["test"].add(put(f"test/{label}/{label}_t{i}.wav", _tone(1.2, seed=50 + i,
                                 freq=300 + 400 * k)))  # fmt: skip
    good["train"].add(put("train/dog/quiet_silence.wav", np.zeros(SR, np.float32)))
    good["train"].add(put("train/dog/phone_8k.wav", _tone(1.5, 8000, 3), 8000))
    stereo = np.stack([_tone(1.5, 48000, 4), _tone(1.5, 48000, 5)], axis=1)
    good["train"].add(put("train/rain/stereo_48k.flac", stereo, 48000))
    good["train"].add(put("train/rain/vorbis.oga", _tone(1.3, 22050, 6), 22050, format="OGG",
                          subtype="VORBIS"))  # fmt: skip
    if _mp3_works(root):
        good["train"].add(put("train/rain/clip.mp3", _tone(1.3, 44100, 7), 44100, format="MP3"))
    long_clip = put("train/rain/ten_minutes.wav", _tone(600.0, 8000, 8), 8000)
    good["train"].add(long_clip)
    b.long_clips.add(long_clip)

    # bad files
    def bad(rel: str, reason: str) -> str:
        b.bad[rel] = reason
        return rel

    x = _tone(1.0, seed=9)
    x[100:110] = np.nan
    put(bad("train/dog/nan.wav", "bad_audio"), x, subtype="FLOAT")
    x = _tone(1.0, seed=10)
    x[100:110] = np.inf
    put(bad("test/rain/inf.wav", "bad_audio"), x, subtype="FLOAT")
    whole = (tree / "train/dog/dog_0.wav").read_bytes()
    (tree / bad("train/dog/truncated.wav", "truncated")).write_bytes(whole[: len(whole) // 3])
    (tree / bad("train/dog/header_only.wav", "empty")).write_bytes(whole[:44])
    (tree / bad("train/rain/zero_bytes.wav", "unreadable")).write_bytes(b"")
    rng = np.random.default_rng(11)
    (tree / bad("train/rain/random.wav", "unreadable")).write_bytes(rng.bytes(4000))
    (tree / bad("test/dog/text.flac", "unreadable")).write_text("this is not audio\n" * 50)
    put(bad("train/rain/click_10ms.wav", "too_short"), _tone(0.01, seed=12))
    loop_a, loop_b = tree / "train/dog/loop_a.wav", tree / "train/dog/loop_b.wav"
    os.symlink(loop_b.name, loop_a)
    os.symlink(loop_a.name, loop_b)
    b.bad["train/dog/loop_a.wav"] = b.bad["train/dog/loop_b.wav"] = "broken_link"
    if os.geteuid() != 0:  # root reads mode-000 files anyway: the case needs a normal user
        locked = put(bad("train/rain/locked.wav", "unreadable"), _tone(1.0, seed=13))
        (tree / locked).chmod(0)
    b.good = good

    # the listing: every good file once, plus bad rows
    lines = ["path,label,caption"]
    hostile = {  # captions of three good clips that a listing may hold
        "train/dog/dog_2.wav": " ".join(["word"] * 20000),
        "train/dog/dog_3.wav": "a dog\x07 barks\x1b[31m loudly\x00",
        "train/dog/dog_4.wav": "   ",
    }
    for split in ("train", "test"):
        for rel in sorted(good[split]):
            label = rel.split("/")[1]
            caption = hostile.get(rel, f"a recording of {label} ({split})")
            lines.append(f"tree/{rel},{label},{caption}")
    b.listing_good = len(lines) - 1
    raw: list[bytes] = [ln.encode() for ln in lines]

    def row(text: bytes | str, reason: str | None) -> None:
        raw.append(text if isinstance(text, bytes) else text.encode())
        if reason:
            b.listing_bad[len(raw)] = reason  # 1-based line number in the file

    for rel, reason in sorted(b.bad.items()):
        row(f"tree/{rel},dog,a broken file", reason)
    row("tree/train/dog/not_there.wav,dog,a missing file", "missing")
    first = sorted(good["train"])[0]
    row(f"tree/{first},dog,a recording of dog (train)", "duplicate")  # the same row again
    row(f"tree/{first},rain,another caption for the same file", "duplicate")  # same file
    row(f"tree/{first},dog,café".encode("latin-1"), "bad_encoding")
    row(f"tree/{first},dog,extra,column", "bad_columns")
    b.listing.write_bytes(b"\n".join(raw) + b"\n")
    return b
