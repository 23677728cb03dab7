"""Tests for the MusicCaps prepare module on a tiny fake corpus."""

from __future__ import annotations

import prepare_checks as checks
import pytest
from corpus_fixtures import musiccaps as fixture

from toolkit.data.cuts import cut_captions, cut_custom, cut_labels
from toolkit.data.dataset import load_mono
from toolkit.data.prepare.musiccaps import parse_aspect_list, prepare_musiccaps

prepared = checks.prepared_fixture(fixture, prepare_musiccaps, "musiccaps")


def test_parse_aspect_list():
    assert parse_aspect_list("['Pop', ' tinny  hats', 'pop']") == ["pop", "tinny hats"]
    assert parse_aspect_list("[]") == []
    assert parse_aspect_list("[rock, jazz") == ["rock", "jazz"]  # not a literal: comma split


def test_splits_ids_and_segments(prepared):
    _, _, cuts = prepared
    train = {c.id: c for c in cuts["train"]}
    test = {c.id: c for c in cuts["test"]}
    assert sorted(train) == ["musiccaps_-0Gj8-vB1q4_30", "musiccaps_oOiwmRV1PBk_0"]
    assert sorted(test) == ["musiccaps_0bRUkLsttto_10", "musiccaps__IkLUOsNHAA_0"]
    full = train["musiccaps_-0Gj8-vB1q4_30"]  # full audio: the [30, 40) segment
    assert full.start == pytest.approx(30.0) and full.duration == pytest.approx(10.0)
    assert full.recording.duration == pytest.approx(42.0)
    clip = train["musiccaps_oOiwmRV1PBk_0"]  # <ytid>.flac shorter than 10.5 s: whole clip
    assert clip.start == 0 and clip.duration == pytest.approx(4.0)
    assert test["musiccaps_0bRUkLsttto_10"].duration == pytest.approx(3.0)
    assert test["musiccaps__IkLUOsNHAA_0"].duration == pytest.approx(2.5)


def test_captions_labels_metadata(prepared):
    _, _, cuts = prepared
    by_id = {c.id: c for cs in cuts.values() for c in cs}
    cut = by_id["musiccaps_-0Gj8-vB1q4_30"]
    assert cut_captions(cut) == [
        "The low quality recording features a sustained strings melody.",
        "low quality, sustained strings melody, soft female vocal",
    ]
    checks.assert_custom(
        cut, caption_style=["detailed", "tags"], domain="music", source="musiccaps",
        audio_key="yt:-0Gj8-vB1q4:30", orig_id="-0Gj8-vB1q4", split="train",
    )  # fmt: skip
    assert cut_labels(cut) == {
        "music_aspects": ["low quality", "sustained strings melody", "soft female vocal"]
    }
    aspects_only = by_id["musiccaps_oOiwmRV1PBk_0"]
    checks.assert_custom(aspects_only, caption=["instrumental, slow tempo"], caption_style=["tags"])
    assert cut_custom(by_id["musiccaps__IkLUOsNHAA_0"])["audio_key"] == "yt:_IkLUOsNHAA:0"


def test_skipped(prepared):
    assert prepared.skipped("train") | prepared.skipped("test") == {
        "musiccaps_2unse6chkMU_60": "missing",
        "musiccaps_3xYjQw5xVbI_5": "unreadable",
        "musiccaps_4aZ_UgBzxxQ_0": "no_caption",
    }


def test_load_audio(prepared):
    _, _, cuts = prepared
    full = next(c for c in cuts["train"] if c.id.endswith("_30"))
    audio = load_mono(full, 16000)
    assert audio.shape == (160000,)
    clip = next(c for c in cuts["test"] if "0bRUkLsttto" in c.id)
    assert load_mono(clip, 16000).shape == (48000,)


def test_rerun_reuses_and_cli(prepared, capsys):
    corpus, out, _ = prepared
    path = prepared.manifest("train")
    mtime = path.stat().st_mtime_ns
    checks.assert_rerun_reuses(path, lambda: prepare_musiccaps(corpus, out))
    options = ("--csv-file", "--audio-dir", "--clip-tolerance", "--min-duration")
    checks.assert_cli_help_lists(capsys, "musiccaps", *options)
    checks.assert_cli_rerun_reuses(prepared)
    assert path.stat().st_mtime_ns == mtime


def test_bad_segment_and_missing_csv(tmp_path):
    corpus = fixture.write_fixture(tmp_path)
    text = (corpus / "musiccaps-public.csv").read_text()
    (corpus / "musiccaps-public.csv").write_text(
        text.replace("-0Gj8-vB1q4,30,40", "-0Gj8-vB1q4,50,60")
    )
    cuts = prepare_musiccaps(corpus, tmp_path / "out")
    assert "musiccaps_-0Gj8-vB1q4_50" not in {c.id for c in cuts["train"]}
    skipped = checks.skipped_reasons(tmp_path / "out", "musiccaps", "train")
    assert skipped["musiccaps_-0Gj8-vB1q4_50"] == "bad_metadata"
    with pytest.raises(FileNotFoundError, match="musiccaps-public.csv"):
        prepare_musiccaps(tmp_path / "nowhere", tmp_path / "out2")
