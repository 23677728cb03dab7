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
            _write(root / label / f"sub{i}" / f"{label}{i}.wav", 1.0 + 0.1 * i, sr, ch)
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
    m = prepare_listing(
        root, out, listing=listing.name, name="lst", label_captions=True, dev_fraction=0
    )
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


def test_recording_group():
    from toolkit.data.prepare.generic import recording_group

    assert recording_group("spk1/a.wav") == "spk1"  # a sub-folder under the label
    assert recording_group("rec7_seg2.wav") == recording_group("rec7-take3.flac") == "rec7"
    assert recording_group("rec7_b.wav") == recording_group("rec7_part01.wav") == "rec7"
    assert recording_group("dog_001.wav") == "dog_001.wav"  # numbered files: separate recordings
    assert recording_group("abc_nohash_1.wav", pattern=r"^([^_]+)_") == "abc"


def test_stratified_split_keeps_groups_together_and_is_seeded():
    keyed = [("x", f"r{g}_{t}") for g in range(10) for t in "ab"]
    groups = {k: k.split("_")[0] for _, k in keyed}
    for seed in (0, 1, 2):
        split = stratified_split(keyed, 0.2, 0.2, groups, seed)
        for g in set(groups.values()):
            assert len({split[k] for k in groups if groups[k] == g}) == 1
        assert sorted(split.values()).count("test") == 4  # 2 of 10 groups
    assert stratified_split(keyed, 0.2, 0.2, groups, 1) != stratified_split(
        keyed, 0.2, 0.2, groups, 2
    )
    # two groups only: the dev share is carved, train keeps the other one
    assert sorted(stratified_split([("y", "a"), ("y", "b")], 0.1, 0.0).values()) == ["dev", "train"]


def test_folder_without_dev_folder_carves_a_grouped_dev(tmp_path, caplog):
    root = tmp_path / "corp"
    for label in ("a", "b"):
        for i in range(4):
            _write(root / "train" / label / f"{label}{i}.wav", 0.3)
        for take in (1, 2):
            _write(root / "train" / label / f"{label}_rec_take{take}.wav", 0.3)
        _write(root / "test" / label / f"{label}t.wav", 0.3)
    with caplog.at_level("INFO"):
        m = prepare_folder(root, tmp_path / "m", seed=3)
    dev, train = list(m["dev"]), list(m["train"])
    assert {cut_labels(c)["sound_class"] for c in dev} == {"a", "b"}
    assert len(dev) + len(train) == 12 and len(list(m["test"])) == 2
    assert f"carved {len(dev)} of 12 train clips" in caplog.text
    for label in ("a", "b"):  # the two takes of one recording share a split
        takes = [c for c in dev + train if f"{label}_rec_take" in cut_custom(c)["orig_id"]]
        assert len({cut_custom(c)["split"] for c in takes}) == 1


def test_bad_task_is_one_line(tmp_path, capsys):
    from toolkit.config import ConfigError

    _write(tmp_path / "corp" / "cat" / "c.wav", 0.5)
    with pytest.raises(ConfigError, match=r"--task 'drum'.*<domain>_<attribute>"):
        prepare_folder(tmp_path / "corp", tmp_path / "m", task="drum")
    with pytest.raises(SystemExit) as e:
        import sys

        from toolkit.bin.prepare import cli

        sys.argv = ["prepare", "folder", "--corpus-dir", str(tmp_path / "corp"),
                    "--output-dir", str(tmp_path / "m"), "--task", "drum"]  # fmt: skip
        cli()
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("config error: --task 'drum'") and len(err.strip().splitlines()) == 1


def test_listing_without_split_column_grouped_split_and_task(tmp_path):
    root = tmp_path / "corp"
    lines = ["path,label,start,end"]
    for label in ("hit", "pad"):
        for i in range(6):
            _write(root / "wav" / f"{label}{i}.wav", 4.0)
            lines += [f"wav/{label}{i}.wav,{label},0,2", f"wav/{label}{i}.wav,{label},2,4"]
    (root / "list.csv").write_text("\n".join(lines) + "\n")
    m = prepare_listing(root, tmp_path / "m", listing="list.csv", task="music_instrument",
                        label_captions=True, dev_fraction=0.2, test_fraction=0.2)  # fmt: skip
    cuts = {s: list(c) for s, c in m.items()}
    assert set(cuts) == {"train", "dev", "test"}
    split_of: dict[str, set[str]] = {}
    for s, cs in cuts.items():
        assert {cut_labels(c)["music_instrument"] for c in cs} == {"hit", "pad"}
        for c in cs:
            split_of.setdefault(cut_custom(c)["orig_id"], set()).add(s)
    assert all(len(v) == 1 for v in split_of.values())  # both segments of a file: one split
    assert cut_captions(cuts["test"][0])[1].startswith("the sound of ")


def test_listing_split_column_without_dev_carves_one(tmp_path):
    root = tmp_path / "corp"
    lines = ["path,label,split"]
    for label in ("x", "y"):
        for i in range(5):
            _write(root / f"{label}{i}.wav", 0.5)
            lines.append(f"{label}{i}.wav,{label},{'test' if i == 0 else 'train'}")
    (root / "l.csv").write_text("\n".join(lines) + "\n")
    m = prepare_listing(root, tmp_path / "m", listing="l.csv")
    counts = {s: len(list(c)) for s, c in m.items()}
    assert counts == {"train": 6, "dev": 2, "test": 2}
    with pytest.raises(ValueError, match="--task 'label'"):
        prepare_listing(root, tmp_path / "m2", listing="l.csv", task="label")
