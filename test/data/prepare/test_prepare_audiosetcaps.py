"""Tests for the AudioSetCaps prepare recipe (toolkit.data.prepare.audiosetcaps) on its fixture."""

from __future__ import annotations

import shutil

import prepare_checks as checks
import pytest
from corpus_fixtures import audiosetcaps as fixture
from lhotse import CutSet

from toolkit.bin import prepare as prepare_cli
from toolkit.data.cuts import cut_captions, cut_custom
from toolkit.data.dataset import load_mono
from toolkit.data.prepare.audiosetcaps import (
    caption_style_of,
    parse_clip_id,
    prepare_audiosetcaps,
    read_audioset_starts,
)
from toolkit.data.prepare.common import manifest_path

P = "audiosetcaps_"


prepared = checks.prepared_fixture(fixture, prepare_audiosetcaps, "audiosetcaps", by_id=True)


def test_parse_clip_id_forms():
    assert parse_clip_id("Y---1_cCGK4M") == ("---1_cCGK4M", None)
    assert parse_clip_id("---1_cCGK4M") == ("---1_cCGK4M", None)
    assert parse_clip_id("OxPnZzn1_L8_000883") == ("OxPnZzn1_L8", 883.0)
    assert parse_clip_id("9eUrEyAR3xk_84_10") == ("9eUrEyAR3xk", 84.0)
    assert parse_clip_id("Y--PJHxphWEs_30.000_40.000") == ("--PJHxphWEs", 30.0)
    assert parse_clip_id("YabcdefghijY") == ("abcdefghijY", None)  # 12 chars: Y prefix
    assert parse_clip_id("Yabcdefghij") == ("Yabcdefghij", None)  # 11 chars: a real id
    assert parse_clip_id("not a clip") is None
    assert parse_clip_id("short_12") is None


def test_caption_style_rule():
    assert caption_style_of("A dog barks.", 20) == "short"
    assert caption_style_of("A dog barks. A man speaks.", 20) == "detailed"
    assert caption_style_of(" ".join(["word"] * 21), 20) == "detailed"
    assert caption_style_of("A dog barks.", 0) == "detailed"


def test_read_audioset_starts(tmp_path):
    corpus = fixture.write_fixture(tmp_path)
    files = [corpus / f for f in fixture.PREPARE_OPTIONS["audioset_segments"]]
    starts = read_audioset_starts(files)
    assert starts == {"---1_cCGK4M": 30.0, "zzEmptyCap1": 0.0, "-0OkG0fLLkc": 120.0}
    assert read_audioset_starts(files, wanted={"-0OkG0fLLkc"}) == {"-0OkG0fLLkc": 120.0}
    with pytest.raises(FileNotFoundError):
        read_audioset_starts([tmp_path / "nope.csv"])


def test_ids_splits_and_audio_keys(prepared):
    _, _, cuts = prepared
    assert set(cuts) == {"train", "dev"}
    assert set(cuts["train"]) == {
        P + "audioset_Y---1_cCGK4M",
        P + "audioset_Y-0OkG0fLLkc",
        P + "vggsound_OxPnZzn1_L8_000883",
        P + "youtube8m_9eUrEyAR3xk_84_10",
    }
    assert set(cuts["dev"]) == {P + "youtube8m_-TL8Mp3xcUM_0_10"}
    keys = {
        cid: cut_custom(c).get("audio_key") for split in cuts.values() for cid, c in split.items()
    }
    assert keys == {
        P + "audioset_Y---1_cCGK4M": "yt:---1_cCGK4M:30",
        P + "audioset_Y-0OkG0fLLkc": "yt:-0OkG0fLLkc:120",
        P + "vggsound_OxPnZzn1_L8_000883": "yt:OxPnZzn1_L8:883",
        P + "youtube8m_9eUrEyAR3xk_84_10": "yt:9eUrEyAR3xk:84",
        P + "youtube8m_-TL8Mp3xcUM_0_10": "yt:-TL8Mp3xcUM:0",
    }
    for split, by_id in cuts.items():
        for cut in by_id.values():
            checks.assert_custom(cut, split=split, source="audiosetcaps", domain="sound")
            assert cut.id.endswith("_" + cut_custom(cut)["orig_id"])


def test_captions_styles_and_durations(prepared):
    _, _, cuts = prepared
    train = cuts["train"]
    detailed = train[P + "audioset_Y---1_cCGK4M"]
    assert cut_captions(detailed) == [fixture.DETAILED]
    checks.assert_custom(detailed, caption_style=["detailed"])
    merged = train[P + "audioset_Y-0OkG0fLLkc"]  # two consecutive CSV rows → one cut
    assert cut_captions(merged) == [
        "A woman speaks with a high-pitched voice.",
        "Speech by a woman indoors.",
    ]
    checks.assert_custom(merged, caption_style=["short", "short"])
    assert merged.num_channels == 2 and merged.sampling_rate == 32000
    expected = {name.rsplit(".", 1)[0]: sec for _, name, _, _, sec in fixture.AUDIO}
    for by_id in cuts.values():
        for cut in by_id.values():
            stem = cut_custom(cut)["orig_id"]
            sec = expected.get(stem, expected.get(stem[1:]))
            assert cut.start == 0 and cut.duration == pytest.approx(sec, abs=1e-3)


def test_skipped_items_are_counted_and_listed(prepared):
    skipped = prepared.summary("train")["skipped"]
    for reason in ("missing", "unreadable", "no_caption", "too_short"):
        assert skipped[reason] == 1
    assert prepared.skipped("train") == {
        P + "audioset_Yb0RFKhbpFJA": "missing",
        P + "audioset_YzzEmptyCap1": "no_caption",
        P + "vggsound_corruptclip_000010": "unreadable",
        P + "youtube8m__7Xe9vD3Hpg_4_10": "too_short",
    }


def test_audio_loads_at_16k(prepared):
    _, _, cuts = prepared
    cut = cuts["train"][P + "youtube8m_9eUrEyAR3xk_84_10"]  # 2.5 s at 22.05 kHz
    assert load_mono(cut, 16000).shape == (40000,)
    stereo = cuts["train"][P + "audioset_Y-0OkG0fLLkc"]  # 1.5 s, 2 channels, 32 kHz
    assert load_mono(stereo, 16000).shape == (24000,)


def test_rerun_reuses_finished_parts(prepared, caplog):
    corpus, out, _ = prepared
    path = prepared.manifest("train")
    with caplog.at_level("INFO"):
        again = checks.assert_rerun_reuses(
            path, lambda: prepare_audiosetcaps(corpus, out, **fixture.PREPARE_OPTIONS)
        )
    assert "reused" in caplog.text
    assert len(CutSet.from_file(path)) == len(list(again["train"])) == 4


def test_cli_help_and_run(prepared, tmp_path, capsys):
    corpus, _, _ = prepared
    checks.assert_cli_help_lists(capsys, "audiosetcaps", "--subsets", "--audio-dirs",
                          "--audioset-segments", "--heldout-ids", "--short-max-words",
                          "--min-duration", "--num-jobs", "--force")  # fmt: skip
    # only the vggsound subset, its clips moved to a folder given with --audio-dirs
    moved = tmp_path / "vgg_clips"
    shutil.copytree(corpus / "audio" / "vggsound", moved)
    rc = prepare_cli.main(["audiosetcaps", "--corpus-dir", str(corpus), "--output-dir",
                           str(tmp_path / "m"), "--subsets", "vggsound",
                           "--audio-dirs", f"vggsound={moved}"])  # fmt: skip
    assert rc == 0
    cuts = CutSet.from_file(manifest_path(tmp_path / "m", "audiosetcaps", "train"))
    assert [c.id for c in cuts] == [P + "vggsound_OxPnZzn1_L8_000883"]
    assert str(moved) in cuts[0].recording.sources[0].source


def test_bad_options(prepared, tmp_path):
    corpus, _, _ = prepared
    with pytest.raises(ValueError, match="unknown AudioSetCaps subset"):
        prepare_audiosetcaps(corpus, tmp_path, subsets=("audiocaps",))
    with pytest.raises(ValueError, match="<subset>=<folder>"):
        prepare_audiosetcaps(corpus, tmp_path, audio_dirs=("vggsound",))
    with pytest.raises(FileNotFoundError, match="no AudioSetCaps caption CSV"):
        prepare_audiosetcaps(tmp_path, tmp_path / "m")
