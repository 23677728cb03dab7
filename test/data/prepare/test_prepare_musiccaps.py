"""Tests for the MusicCaps prepare module on a tiny fake corpus."""

from __future__ import annotations

import pytest
from corpus_fixtures import musiccaps as fixture

from toolkit.bin import prepare as prepare_cli
from toolkit.data.cuts import cut_captions, cut_custom, cut_labels
from toolkit.data.dataset import load_mono
from toolkit.data.prepare.common import manifest_path
from toolkit.data.prepare.musiccaps import parse_aspect_list, prepare_musiccaps


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("musiccaps")
    corpus = fixture.write_fixture(root)
    out = root / "manifests"
    cuts = prepare_musiccaps(corpus, out, **fixture.PREPARE_OPTIONS)
    return corpus, out, {split: list(cs) for split, cs in cuts.items()}


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
    custom = cut_custom(cut)
    assert cut_captions(cut) == [
        "The low quality recording features a sustained strings melody.",
        "low quality, sustained strings melody, soft female vocal",
    ]
    assert custom["caption_style"] == ["detailed", "tags"]
    assert custom["domain"] == "music" and custom["source"] == "musiccaps"
    assert custom["audio_key"] == "yt:-0Gj8-vB1q4:30" and custom["orig_id"] == "-0Gj8-vB1q4"
    assert custom["split"] == "train"
    assert cut_labels(cut) == {
        "music_aspects": ["low quality", "sustained strings melody", "soft female vocal"]
    }
    aspects_only = cut_custom(by_id["musiccaps_oOiwmRV1PBk_0"])
    assert aspects_only["caption"] == ["instrumental, slow tempo"]
    assert aspects_only["caption_style"] == ["tags"]
    assert cut_custom(by_id["musiccaps__IkLUOsNHAA_0"])["audio_key"] == "yt:_IkLUOsNHAA:0"


def test_skipped(prepared):
    _, out, _ = prepared
    rows = {}
    for split in ("train", "test"):
        tsv = out / f"musiccaps_cuts_{split}.skipped.tsv"
        for line in tsv.read_text().splitlines()[1:]:
            cid, reason, _ = line.split("\t")
            rows[cid] = reason
    assert rows == {
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
    path = manifest_path(out, "musiccaps", "train")
    mtime = path.stat().st_mtime_ns
    prepare_musiccaps(corpus, out)
    assert path.stat().st_mtime_ns == mtime
    with pytest.raises(SystemExit):
        prepare_cli.main(["musiccaps", "--help"])
    text = capsys.readouterr().out
    for option in ("--csv-file", "--audio-dir", "--clip-tolerance", "--min-duration"):
        assert option in text
    assert (
        prepare_cli.main(["musiccaps", "--corpus-dir", str(corpus), "--output-dir", str(out)]) == 0
    )
    assert path.stat().st_mtime_ns == mtime


def test_bad_segment_and_missing_csv(tmp_path):
    corpus = fixture.write_fixture(tmp_path)
    text = (corpus / "musiccaps-public.csv").read_text()
    (corpus / "musiccaps-public.csv").write_text(
        text.replace("-0Gj8-vB1q4,30,40", "-0Gj8-vB1q4,50,60")
    )
    cuts = prepare_musiccaps(corpus, tmp_path / "out")
    assert "musiccaps_-0Gj8-vB1q4_50" not in {c.id for c in cuts["train"]}
    skipped = (tmp_path / "out" / "musiccaps_cuts_train.skipped.tsv").read_text()
    assert "musiccaps_-0Gj8-vB1q4_50\tbad_metadata" in skipped
    with pytest.raises(FileNotFoundError, match="musiccaps-public.csv"):
        prepare_musiccaps(tmp_path / "nowhere", tmp_path / "out2")
