"""Tests for the AudioCaps prepare recipe (toolkit.data.prepare.audiocaps) on its fixture."""

from __future__ import annotations

import shutil

import prepare_checks as checks
import pytest
from corpus_fixtures import audiocaps as fixture
from lhotse import CutSet

from toolkit.bin import prepare as prepare_cli
from toolkit.data.cuts import cut_captions
from toolkit.data.dataset import load_mono
from toolkit.data.prepare.audiocaps import prepare_audiocaps, read_split_csv
from toolkit.data.prepare.common import manifest_path

P = "audiocaps_"


prepared = checks.prepared_fixture(fixture, prepare_audiocaps, "audiocaps", by_id=True)


def test_read_split_csv_groups_interleaved_rows(prepared):
    corpus, _, _ = prepared
    clips = read_split_csv(corpus / "val.csv")
    assert [(c["youtube_id"], c["start"]) for c in clips] == [
        ("vfY_TJq7n_U", 130),
        ("uYT5gxnyMWM", 50),
    ]
    assert clips[0]["captions"] == fixture.VAL_A and clips[1]["captions"] == fixture.VAL_B
    assert clips[0]["audiocap_ids"] == [str(97151 + k) for k in range(5)]


def test_splits_ids_captions_and_keys(prepared):
    _, _, cuts = prepared
    assert {s: sorted(c) for s, c in cuts.items()} == {
        "train": [P + "--0w1YA1Hm4_30"],
        "dev": [P + "uYT5gxnyMWM_50", P + "vfY_TJq7n_U_130"],
        "test": [P + "7fmOlUlwoNg_20"],
    }
    dev = cuts["dev"][P + "vfY_TJq7n_U_130"]
    assert cut_captions(dev) == fixture.VAL_A  # the 5 captions of the clip, in CSV order
    assert cut_captions(cuts["dev"][P + "uYT5gxnyMWM_50"]) == fixture.VAL_B
    durations = {P + "--0w1YA1Hm4_30": 2.0, P + "vfY_TJq7n_U_130": 1.0,
                 P + "uYT5gxnyMWM_50": 1.5, P + "7fmOlUlwoNg_20": 2.0}  # fmt: skip
    for split, by_id in cuts.items():
        for cid, cut in by_id.items():
            custom = cut.supervisions[0].custom
            yt, start = custom["orig_id"].rsplit("_", 1)
            assert len(yt) == 11
            checks.assert_custom(
                cut, audio_key=f"yt:{yt}:{start}", split=split, source="audiocaps", domain="sound",
                caption_style=["short"] * len(custom["caption"]),
            )  # fmt: skip
            assert cut.start == 0 and cut.duration == pytest.approx(durations[cid], abs=1e-3)
    assert cut_captions(cuts["train"][P + "--0w1YA1Hm4_30"]) == [
        "A woman talks nearby as water pours"
    ]


def test_skipped_items(prepared):
    _, out, _ = prepared
    assert prepared.skipped("train") == {
        P + "zzMissing01_10": "missing",
        P + "corruptclip_0": "unreadable",
    }
    assert prepared.skipped("test") == {
        P + "6BJ455B1aAs_0": "too_short",
        P + "test_row8": "bad_metadata",
    }
    assert not (out / "audiocaps_cuts_dev.skipped.tsv").exists()
    assert prepared.summary("train")["skipped"] == {"missing": 1, "unreadable": 1}


def test_load_audio_and_rerun(prepared, caplog):
    corpus, out, cuts = prepared
    stereo = cuts["dev"][P + "uYT5gxnyMWM_50"]  # 1.5 s, 2 channels, 44.1 kHz
    assert stereo.num_channels == 2
    assert load_mono(stereo, 16000).shape == (24000,)
    with caplog.at_level("INFO"):
        checks.assert_rerun_reuses(prepared.manifest("dev"), lambda: prepare_audiocaps(corpus, out))
    assert "reused" in caplog.text


def test_cli_and_audiocaps2_layout(prepared, tmp_path, capsys):
    corpus, _, _ = prepared
    flags = ("--csv-dir", "--audio-dir", "--splits", "--min-duration", "--num-jobs")
    checks.assert_cli_help_lists(capsys, "audiocaps", *flags)
    # AudioCaps 2.0 GitHub layout: dataset2.0/{val,test}.csv; clips in a custom folder with
    # a "validation" split folder
    v2 = tmp_path / "ac2"
    (v2 / "dataset2.0").mkdir(parents=True)
    shutil.copy(corpus / "val.csv", v2 / "dataset2.0" / "val.csv")
    shutil.copytree(corpus / "audio" / "val", v2 / "clips" / "validation")
    rc = prepare_cli.main(["audiocaps", "--corpus-dir", str(v2), "--output-dir",
                           str(tmp_path / "m"), "--audio-dir", "clips"])  # fmt: skip
    assert rc == 0
    dev = CutSet.from_file(manifest_path(tmp_path / "m", "audiocaps", "dev"))
    assert sorted(c.id for c in dev) == [P + "uYT5gxnyMWM_50", P + "vfY_TJq7n_U_130"]
    assert not manifest_path(tmp_path / "m", "audiocaps", "train").exists()


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no AudioCaps CSV"):
        prepare_audiocaps(tmp_path, tmp_path / "m")
    with pytest.raises(ValueError, match="unknown AudioCaps split"):
        prepare_audiocaps(tmp_path, tmp_path / "m", splits=("val",))
    (tmp_path / "test.csv").write_text("youtube_id,caption\nabc,def\n")
    with pytest.raises(ValueError, match="missing column"):
        prepare_audiocaps(tmp_path, tmp_path / "m")
