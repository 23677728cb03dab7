"""Tests for the generic new-corpus recipes: a labelled folder tree and a CSV/TSV/JSONL listing."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from lhotse import CutSet

from toolkit.bin.prepare import main
from toolkit.data.cuts import cut_captions, cut_custom, cut_labels
from toolkit.data.dataset import load_mono
from toolkit.data.prepare.generic import prepare_folder, prepare_listing, stratified_split


def _write(path, seconds: float, sr: int = 16000, channels: int = 1) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    x = 0.1 * np.random.default_rng(0).standard_normal((int(seconds * sr), channels))
    sf.write(path, x, sr)


def _cuts(out, name, split):
    return list(CutSet.from_file(out / f"{name}_cuts_{split}.jsonl.gz"))


def test_folder_mixed_audio_stratified(tmp_path):
    root = tmp_path / "corp"
    for label in ("dog_bark", "rain"):
        for i in range(5):
            sr, ch = [(8000, 1), (44100, 2), (16000, 1)][i % 3]
            _write(root / label / f"sub{i % 2}" / f"{label}{i}.wav", 1.0 + 0.1 * i, sr, ch)
    _write(root / "rain" / "tiny.wav", 0.02)  # too short
    _write(root / "rain" / "long.flac", 35.0, 8000)  # > max_duration 30 s: 10 s windows
    (root / "rain" / "broken.wav").write_bytes(b"RIFF junk")
    (root / "notes.txt").write_text("not audio")
    out = tmp_path / "m"
    m = prepare_folder(root, out, name="pets", test_fraction=0.2, dev_fraction=0.2)
    splits = {s: list(m[s]) for s in m}
    assert set(splits) == {"train", "dev", "test"}
    for s in ("dev", "test"):  # stratified: every label in every split
        assert {cut_labels(c)["sound_class"] for c in splits[s]} == {"dog_bark", "rain"}
    all_cuts = [c for cs in splits.values() for c in cs]
    long = sorted((c for c in all_cuts if "long" in c.id), key=lambda c: c.start)
    assert [(c.start, c.duration) for c in long] == [(0, 10), (10, 10), (20, 10), (30, 5)]
    assert len({cut_custom(c)["split"] for c in long}) == 1  # segments of one file stay together
    cut = next(c for c in all_cuts if c.id.endswith("dog_bark1"))
    assert cut_captions(cut) == ["dog bark", "the sound of dog bark"]
    assert cut_custom(cut)["orig_id"] == "dog_bark/sub1/dog_bark1.wav"
    assert load_mono(cut, 16000).shape == (17600,)  # 1.1 s of 44.1 kHz stereo → 16 kHz mono
    skipped = {}
    for s in m:
        f = out / f"pets_cuts_{s}.skipped.tsv"
        if f.exists():
            for row in f.read_text().splitlines()[1:]:
                skipped[row.split("\t")[0].split("/")[-1]] = row.split("\t")[1]
    assert skipped == {"tiny.wav": "too_short", "broken.wav": "unreadable"}


def test_folder_with_split_folders(tmp_path):
    root = tmp_path / "corp"
    for split, n in (("train", 3), ("valid", 1), ("test", 2)):
        for label in ("a", "b"):
            for i in range(n):
                _write(root / split / label / f"{label}{i}.wav", 0.5)
    m = prepare_folder(root, tmp_path / "m", domain="music", task="music_style")
    assert {s: len(list(c)) for s, c in m.items()} == {"train": 6, "dev": 2, "test": 4}
    assert cut_labels(next(iter(m["dev"]))) == {"music_style": "a"}


def test_stratified_split_is_order_independent():
    keys = [("x", f"k{i}") for i in range(10)] + [("y", f"j{i}") for i in range(3)]
    a = stratified_split(keys, 0.1, 0.2)
    b = stratified_split(list(reversed(keys)), 0.1, 0.2)
    assert a == b
    counts = {s: sum(1 for k, v in a.items() if v == s and k.startswith("k")) for s in a.values()}
    assert counts == {"train": 7, "dev": 1, "test": 2}
    assert sorted(v for k, v in a.items() if k.startswith("j")) == ["dev", "test", "train"]


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl"])
def test_listing_formats(tmp_path, fmt):
    root = tmp_path / "corp"
    _write(root / "audio" / "a.wav", 2.0)
    _write(root / "audio" / "long.wav", 12.0, 48000, 2)
    rows = [
        {"path": "audio/a.wav", "caption": "a bell rings|a loud bell", "label": "bell",
         "sound_events": "bell;echo", "split": "test"},
        {"path": "audio/long.wav", "caption": "people talk", "start": "2.0", "end": "7.0",
         "domain": "speech", "split": "train", "style": "detailed"},
        {"path": "audio/long.wav", "caption": "", "start": "7.0", "end": "9.5", "split": "train",
         "label": "noise"},
        {"path": "audio/missing.wav", "caption": "gone", "split": "train"},
    ]  # fmt: skip
    listing = root / f"list.{fmt}"
    if fmt == "jsonl":
        listing.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        sep = "," if fmt == "csv" else "\t"
        cols = sorted({k for r in rows for k in r})
        lines = [sep.join(cols)] + [sep.join(r.get(c, "") for c in cols) for r in rows]
        listing.write_text("\n".join(lines) + "\n")
    out = tmp_path / "m"
    m = prepare_listing(root, out, listing=listing.name, name="lst", label_captions=True)
    test = list(m["test"])
    assert len(test) == 1
    assert cut_captions(test[0]) == ["a bell rings", "a loud bell"]
    assert cut_labels(test[0]) == {"sound_label": "bell", "sound_events": ["bell", "echo"]}
    train = sorted(m["train"], key=lambda c: c.start)
    assert [(c.start, c.duration) for c in train] == [(2.0, 5.0), (7.0, 2.5)]
    assert cut_custom(train[0])["domain"] == "speech"
    assert cut_custom(train[0])["caption_style"] == ["detailed"]
    assert cut_captions(train[1]) == ["noise", "the sound of noise"]  # from its label
    assert load_mono(train[0], 16000).shape == (80000,)
    skipped = (out / "lst_cuts_train.skipped.tsv").read_text()
    assert "missing.wav\tmissing" in skipped


def test_cli_folder(tmp_path):
    root = tmp_path / "corp"
    for i in range(3):
        _write(root / "cat" / f"c{i}.wav", 0.5)
    main(["folder", "--corpus-dir", str(root), "--output-dir", str(tmp_path / "m"),
          "--test-fraction", "0", "--dev-fraction", "0", "--label-captions", "false"])  # fmt: skip
    cuts = _cuts(tmp_path / "m", "folder", "train")
    assert len(cuts) == 3 and cut_captions(cuts[0]) == []
