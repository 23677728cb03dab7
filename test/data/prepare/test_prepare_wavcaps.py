"""Tests for the WavCaps prepare recipe (toolkit.data.prepare.wavcaps) on its fixture."""

from __future__ import annotations

import json

import prepare_checks as checks
import pytest
from corpus_fixtures import wavcaps as fixture
from lhotse import CutSet

from toolkit.bin import prepare as prepare_cli
from toolkit.data.cuts import cut_captions, cut_custom
from toolkit.data.dataset import load_mono
from toolkit.data.prepare.common import manifest_path
from toolkit.data.prepare.wavcaps import iter_json_records, prepare_wavcaps, subset_name

P = "wavcaps_"
KEPT = {
    P + "as_Yb0RFKhbpFJA": ("Wind and a man speaking are heard.", 2.0),
    P + "as_Y--PJHxphWEs": ("A crowd cheers.", 1.0),
    P + "bbc_07066104": ("Someone is using a rip saw in a carpenter's workshop.", 3.0),
    P + "fsd_180913": ("A traditional ringtone is playing.", 1.0),
    P + "sb_2219": ("An airplane is landing.", 1.5),
}


prepared = checks.prepared_fixture(fixture, prepare_wavcaps, "wavcaps")


def test_iter_json_records_both_layouts(tmp_path):
    records = [{"id": "1", "caption": "a, b [c]"}, {"id": "2", "caption": "}{"}]
    wrapped = tmp_path / "w.json"
    wrapped.write_text(json.dumps({"num_captions_per_audio": 1, "meta": {"x": [1]},
                                   "data": records}))  # fmt: skip
    bare = tmp_path / "b.json"
    bare.write_text(json.dumps(records, indent=2))
    assert list(iter_json_records(wrapped)) == records
    assert list(iter_json_records(bare)) == records
    bad = tmp_path / "bad.json"
    bad.write_text('{"data": [{"id": 1}, ')
    with pytest.raises(ValueError, match="bad.json"):
        list(iter_json_records(bad))
    nodata = tmp_path / "nodata.json"
    nodata.write_text('{"items": []}')
    with pytest.raises(ValueError, match="no 'data' list"):
        list(iter_json_records(nodata))


def test_subset_names():
    assert [subset_name(s) for s in ("as", "AudioSet_SL", "FreeSound", "bbc", "SoundBible")] == [
        "as", "as", "fsd", "bbc", "sb",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="unknown WavCaps subset"):
        subset_name("clotho")


def test_cuts_captions_and_audio_keys(prepared):
    _, _, cuts = prepared
    assert set(cuts) == {"train"}
    by_id = {c.id: c for c in cuts["train"]}
    assert set(by_id) == set(KEPT)
    for cid, (caption, seconds) in KEPT.items():
        cut = by_id[cid]
        assert cut_captions(cut) == [caption]
        checks.assert_custom(
            cut, caption_style=["short"], source="wavcaps", domain="sound", split="train"
        )
        assert cut.start == 0 and cut.duration == pytest.approx(seconds, abs=1e-3)
    checks.assert_custom(
        by_id[P + "as_Yb0RFKhbpFJA"], audio_key="yt:b0RFKhbpFJA:30", orig_id="Yb0RFKhbpFJA.wav"
    )
    assert "audio_key" not in cut_custom(by_id[P + "as_Y--PJHxphWEs"])  # no start
    assert "audio_key" not in cut_custom(by_id[P + "bbc_07066104"])
    assert by_id[P + "bbc_07066104"].num_channels == 2


def test_skipped_items(prepared):
    assert prepared.skipped("train") == {
        P + "as_YvfY_TJq7n_U": "blacklisted",
        P + "bbc_07066105": "missing",
        P + "fsd_180914": "unreadable",
        P + "fsd_180915": "no_caption",
        P + "fsd_record3": "bad_metadata",
        P + "sb_2218": "too_short",
    }
    summary = prepared.summary("train")
    assert summary["num_cuts"] == 5 and sum(summary["skipped"].values()) == 6


def test_load_audio_and_rerun(prepared, caplog):
    corpus, out, cuts = prepared
    cut = next(c for c in cuts["train"] if c.id == P + "bbc_07066104")  # 3 s stereo 48 kHz
    assert load_mono(cut, 16000).shape == (48000,)
    with caplog.at_level("INFO"):
        checks.assert_rerun_reuses(
            prepared.manifest("train"),
            lambda: prepare_wavcaps(corpus, out, **fixture.PREPARE_OPTIONS),
        )
    assert "reused" in caplog.text


def test_cli_subsets_and_audio_dir_override(prepared, tmp_path, capsys):
    corpus, _, _ = prepared
    checks.assert_cli_help_lists(capsys, "wavcaps", "--subsets", "--audio-dirs", "--audioset-segments",
                          "--blacklist", "--min-duration", "--num-jobs", "--force")  # fmt: skip
    moved = tmp_path / "sb"
    moved.mkdir()
    (corpus / "audio" / "SoundBible" / "2219.flac").rename(moved / "2219.flac")
    try:
        rc = prepare_cli.main(["wavcaps", "--corpus-dir", str(corpus), "--output-dir",
                               str(tmp_path / "m"), "--subsets", "SoundBible,bbc",
                               "--audio-dirs", f"SoundBible={moved}"])  # fmt: skip
    finally:
        (moved / "2219.flac").rename(corpus / "audio" / "SoundBible" / "2219.flac")
    assert rc == 0
    cuts = CutSet.from_file(manifest_path(tmp_path / "m", "wavcaps", "train"))
    assert sorted(c.id for c in cuts) == [P + "bbc_07066104", P + "sb_2219"]


def test_no_metadata_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no WavCaps metadata"):
        prepare_wavcaps(tmp_path, tmp_path / "m")
