"""Tests for the JamendoMaxCaps prepare module on a tiny fake corpus."""

from __future__ import annotations

import csv
import json

import prepare_checks as checks
import pytest
from corpus_fixtures import jamendomaxcaps as fixture

from toolkit.data.cuts import cut_captions, cut_custom, cut_labels
from toolkit.data.dataset import load_mono
from toolkit.data.prepare.jamendomaxcaps import prepare_jamendomaxcaps, tempo_band

prepared = checks.prepared_fixture(fixture, prepare_jamendomaxcaps, "jamendomaxcaps", by_id=True)


def test_tempo_band():
    assert [tempo_band(b) for b in (60, 89.9, 90, 119, 120, 170)] == [
        "slow",
        "slow",
        "moderate",
        "moderate",
        "fast",
        "fast",
    ]
    assert tempo_band(100, slow_bpm=110, fast_bpm=140) == "slow"


def test_segments_from_caption_times(prepared):
    _, _, cuts = prepared
    assert set(cuts) == {"train"}
    train = cuts["train"]
    assert sorted(train) == [
        "jamendomaxcaps_1001_0",
        "jamendomaxcaps_1001_30",
        "jamendomaxcaps_1002_0",
        "jamendomaxcaps_1002_30",
    ]
    first, last = train["jamendomaxcaps_1001_0"], train["jamendomaxcaps_1001_30"]
    assert (first.start, first.duration) == (0.0, pytest.approx(30.0))
    assert last.start == 30.0 and last.duration == pytest.approx(10.0, abs=0.06)  # clamped
    assert cut_captions(last) == ["The synth melody fades out over a steady beat."]
    checks.assert_custom(last, caption_style=["detailed"])
    # a caption row without times: windows of segment_duration, each with the caption
    a, b = train["jamendomaxcaps_1002_0"], train["jamendomaxcaps_1002_30"]
    assert a.duration == pytest.approx(30.0) and b.duration == pytest.approx(5.0, abs=0.06)
    assert cut_captions(a) == cut_captions(b) == ["A calm solo piano piece in a slow tempo."]


def test_labels_and_metadata(prepared):
    _, _, cuts = prepared
    cut = cuts["train"]["jamendomaxcaps_1001_0"]
    checks.assert_custom(
        cut, domain="music", source="jamendomaxcaps", orig_id="1001", split="train"
    )
    assert "audio_key" not in cut_custom(cut)
    assert cut_labels(cut) == {  # the second shard's record wins
        "music_genre": "electronic",
        "music_instruments": ["synthesizer"],
        "music_mood": ["energetic"],
        "music_tempo": "fast",
        "music_vocals": "instrumental",
    }
    piano = cut_labels(cuts["train"]["jamendomaxcaps_1002_0"])
    assert piano["music_tempo"] == "slow" and piano["music_mood"] == ["calm", "relaxed"]


def test_skipped(prepared):
    assert prepared.skipped("train") == {
        "1003": "missing",
        "1004": "unreadable",
        "1005": "bad_metadata",
        "1006": "no_caption",
    }


def test_load_audio(prepared):
    _, _, cuts = prepared
    audio = load_mono(cuts["train"]["jamendomaxcaps_1001_0"], 16000)
    assert audio.shape == (480000,)


def test_rerun_and_cli(prepared, capsys):
    corpus, out, _ = prepared
    checks.assert_rerun_reuses(
        prepared.manifest("train"), lambda: prepare_jamendomaxcaps(corpus, out)
    )
    checks.assert_cli_help_lists(capsys, "jamendomaxcaps", "--captions-file", "--metadata-glob",
                          "--audio-dir", "--segment-duration", "--slow-bpm", "--fast-bpm",
                          "--dev-fraction", "--test-fraction")  # fmt: skip


def test_csv_exports_bpm_key_and_heldout(tmp_path):
    corpus = fixture.write_fixture(tmp_path)
    rows = [json.loads(line) for line in (corpus / "final_caption30sec.jsonl").open()]
    with open(corpus / "captions.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["id", "caption", "start_time", "end_time"])
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in r.items()} for r in rows)
    with open(corpus / "metadata.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "artist_id", "genre", "bpm", "key", "mood"])
        writer.writerow(["1001", "a1", "Hip_Hop", "95.5", "A minor", "dark;tense"])
        writer.writerow(["1002", "a3", "classical", "", "", ""])
    cuts = prepare_jamendomaxcaps(
        corpus,
        tmp_path / "out",
        captions_file="captions.csv",
        metadata_glob="metadata.csv",
        test_fraction=0.5,
    )
    all_cuts = {c.id: (s, c) for s, cs in cuts.items() for c in cs}
    assert len(all_cuts) == 4
    labels = cut_labels(all_cuts["jamendomaxcaps_1001_0"][1])
    assert labels == {
        "music_genre": "hip hop",
        "music_tempo": "moderate",
        "music_key": "A minor",
        "music_mood": ["dark", "tense"],
    }
    # held-out by artist (a1 -> train, a3 -> test): a track's segments stay together
    assert {s for s, _ in all_cuts.values()} == {"train", "test"}
    assert all_cuts["jamendomaxcaps_1001_0"][0] == all_cuts["jamendomaxcaps_1001_30"][0]
    assert all_cuts["jamendomaxcaps_1002_0"][0] == all_cuts["jamendomaxcaps_1002_30"][0]
    for split, cut in all_cuts.values():
        assert cut_custom(cut)["split"] == split


def test_missing_audio_folder_hint(tmp_path):
    corpus = fixture.write_fixture(tmp_path)
    (corpus / "data").mkdir()
    (corpus / "data" / "train-00000-of-01256.parquet").write_bytes(b"PAR1")
    with pytest.raises(FileNotFoundError, match="extract the MP3s"):
        prepare_jamendomaxcaps(corpus, tmp_path / "out", audio_dir="nope")
