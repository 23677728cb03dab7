"""Tests for the VoxCeleb prepare module on a tiny fake corpus in the real layout."""

from __future__ import annotations

import prepare_checks as checks
import pytest
from corpus_fixtures import voxceleb as fx

from toolkit.data.cuts import cut_captions, cut_custom, cut_labels
from toolkit.data.dataset import load_mono
from toolkit.data.prepare.voxceleb import prepare_voxceleb

prepared = checks.prepared_fixture(fx, prepare_voxceleb, "voxceleb1")


def test_splits_ids_and_labels(prepared):
    _, _, cuts = prepared
    expected = {"train": set(), "dev": set(), "test": set()}
    seconds = {}
    for spk, yt, utt, code, sec in fx.UTTERANCES:
        split = {1: "train", 2: "dev", 3: "test"}[code]
        cid = f"voxceleb1_{spk}_{yt}_{utt}"
        expected[split].add(cid)
        seconds[cid] = sec
    assert {s: {c.id for c in v} for s, v in cuts.items()} == expected
    meta = {
        "id10001": ("male", "Ireland"),
        "id10002": ("female", "USA"),
        "id10003": ("male", "USA"),
    }
    for split, split_cuts in cuts.items():
        for cut in split_cuts:
            custom = cut_custom(cut)
            spk = cut.id.split("_")[1]
            assert cut.duration == pytest.approx(seconds[cut.id])
            assert cut.start == 0 and cut.recording.id == cut.id and len(cut.supervisions) == 1
            assert cut_captions(cut) == []
            checks.assert_label_only_cut(cut, "voxceleb1", "speech", split=split)
            assert "audio_key" not in custom
            assert custom["orig_id"].startswith(f"{spk}/") and custom["orig_id"].endswith(".wav")
            assert cut_labels(cut) == {
                "speech_speaker": spk,
                "speech_gender": meta[spk][0],
                "speech_nationality": meta[spk][1],
            }


def test_skipped_missing_corrupt_and_malformed(prepared):
    _, out, _ = prepared
    assert prepared.summary("dev")["skipped"] == {"unreadable": 1, "bad_metadata": 1}
    assert prepared.summary("test")["skipped"] == {"missing": 1}
    reasons = prepared.skipped("dev")
    spk, yt, utt, _ = fx.CORRUPT
    assert reasons[f"{spk}/{yt}/{utt}.wav"] == "unreadable"
    assert "bad_metadata" in reasons.values()
    assert not (out / "voxceleb1_cuts_train.skipped.tsv").exists()


def test_load_audio(prepared):
    _, _, cuts = prepared
    cut = cuts["test"][0]
    audio = load_mono(cut, 16000)
    assert audio.shape == (round(cut.duration * 16000),)


def test_rerun_reuses(prepared):
    corpus, out, _ = prepared
    checks.assert_rerun_gives_same_cuts(prepared, "train", lambda: prepare_voxceleb(corpus, out))


def test_without_meta_only_speaker(tmp_path):
    corpus = fx.write_fixture(tmp_path)
    (corpus / "vox1_meta.csv").unlink()
    cuts = prepare_voxceleb(corpus, tmp_path / "m")
    cut = next(iter(cuts["train"]))
    assert set(cut_labels(cut)) == {"speech_speaker"}
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        prepare_voxceleb(corpus, tmp_path / "m", meta_file="nope.csv")
    with pytest.raises(ValueError, match="VoxCeleb2 only"):
        prepare_voxceleb(corpus, tmp_path / "m", dev_fraction=0.1)


def test_voxceleb2_video_disjoint_holdout(tmp_path):
    corpus = fx.write_fixture_v2(tmp_path)
    only_train = prepare_voxceleb(corpus, tmp_path / "a", version=2)
    assert set(only_train) == {"train"}
    all_ids = [c.id for c in only_train["train"]]
    assert len(all_ids) == 12 and all(i.startswith("voxceleb2_id000") for i in all_ids)
    summary = checks.read_summary(tmp_path / "a", "voxceleb2", "train")
    assert summary["skipped"] == {"unreadable": 1}  # the .m4a (no ffmpeg) / corrupt file
    cut = next(iter(only_train["train"]))
    assert cut_custom(cut)["source"] == "voxceleb2"
    assert cut_labels(cut)["speech_gender"] in ("male", "female")

    held = prepare_voxceleb(corpus, tmp_path / "b", version=2, dev_fraction=0.3, test_fraction=0.3)
    held = {s: list(v) for s, v in held.items()}
    assert set(held) == {"train", "dev", "test"} and all(held.values())
    assert sorted(c.id for v in held.values() for c in v) == sorted(all_ids)
    videos = {s: {cut_custom(c)["orig_id"].rsplit("/", 1)[0] for c in v} for s, v in held.items()}
    assert not videos["train"] & videos["dev"] and not videos["train"] & videos["test"]
    assert not videos["dev"] & videos["test"]
    for s, v in held.items():
        assert all(cut_custom(c)["split"] == s for c in v)


def test_cli_lists_options(capsys):
    options = ("--version", "--split-file", "--meta-file", "--dev-fraction", "--num-jobs")
    checks.assert_cli_help_lists(capsys, "voxceleb", *options)
