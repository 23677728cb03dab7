"""VGGSound prepare module on a fake corpus (test/corpus_fixtures/vggsound.py)."""

from __future__ import annotations

import prepare_checks as checks
import pytest
from corpus_fixtures import vggsound as fixture

from toolkit.data.cuts import cut_labels
from toolkit.data.dataset import load_mono
from toolkit.data.prepare.vggsound import audio_stems, hash01, prepare_vggsound

prepared = checks.prepared_fixture(fixture, prepare_vggsound, "vggsound")


def test_splits_ids_labels_audio_key(prepared):
    _, _, cuts = prepared
    assert checks.ids_by_split(cuts) == {
        "train": [
            "vggsound_--0PQM4-hqg_000030", "vggsound_--56QUhyDQM_000185",
            "vggsound_BT7h7bpL0wE_000030", "vggsound_W3rT-9uiPqA_000012",
        ],
        "dev": ["vggsound_-0BIyqJj9ZU_000030"],
        "test": ["vggsound_---g-f_I2yQ_000001"],
    }  # fmt: skip
    rows = {f"vggsound_{r[0]}_{int(r[1]):06d}": r for r in fixture.ROWS if r[1].isdigit()}
    for split, cs in cuts.items():
        for cut in cs:
            ytid, start, label, official, _, (sr, channels, seconds) = rows[cut.id]
            assert (official == "test") == (split == "test")
            checks.assert_label_only_cut(
                cut, "vggsound", "sound", split=split, audio_key=f"yt:{ytid}:{int(start)}",
                orig_id=f"{ytid}_{int(start):06d}",
            )  # fmt: skip
            assert cut_labels(cut) == {"sound_event": label}
            assert cut.duration == pytest.approx(seconds) and cut.sampling_rate == sr
            assert cut.num_channels == channels
    assert cuts["dev"][0].supervisions[0].custom["sound_event"] == "bird chirping, tweeting"
    assert cuts["test"][0].supervisions[0].custom["audio_key"] == "yt:---g-f_I2yQ:1"
    assert load_mono(cuts["train"][1], 16000).shape == (24000,)  # 1.5 s stereo 44.1 kHz


def test_skipped(prepared):
    assert prepared.skipped("train") == {"--8puiAGLhs_30": "missing"}
    assert prepared.skipped("test") == {
        "zyTX_1BXKDE_0": "unreadable",
        "a8Z_kq2Lw0E_abc": "bad_metadata",
        "vggsound_Xk9_-pQ2mZs_000020": "too_short",
    }
    assert prepared.skipped("dev") == {}


def test_dev_fraction_is_deterministic(tmp_path):
    corpus = fixture.write_fixture(tmp_path)
    train_ids = [r[0] for r in fixture.ROWS if r[3] == "train" and r[4] and r[5] != "corrupt"]
    cuts = prepare_vggsound(corpus, tmp_path / "m", dev_fraction=0.3)
    dev = sorted(c.supervisions[0].custom["orig_id"][:11] for c in cuts["dev"])
    assert dev == sorted(y for y in train_ids if hash01(y) < 0.3)
    # --0PQM4-hqg (hash 0.149), --56QUhyDQM (0.29), -0BIyqJj9ZU (0.035), W3rT-9uiPqA (0.052)
    assert len(dev) == 4 and [c.id for c in cuts["train"]] == ["vggsound_BT7h7bpL0wE_000030"]
    none = prepare_vggsound(corpus, tmp_path / "m0", dev_fraction=0.0)
    assert len(list(none["dev"])) == 0 and len(list(none["train"])) == 5
    with pytest.raises(ValueError, match="dev_fraction"):
        prepare_vggsound(corpus, tmp_path / "m1", dev_fraction=1.0)


def test_audio_stems():
    assert audio_stems("BT7h7bpL0wE", 30) == [
        "BT7h7bpL0wE_000030", "BT7h7bpL0wE_30", "BT7h7bpL0wE_30000_40000", "BT7h7bpL0wE"
    ]  # fmt: skip


def test_cli_help_and_rerun_reuses(prepared, capsys):
    options = ("--csv-file", "--audio-dir", "--dev-fraction", "--min-duration")
    checks.assert_cli_help_lists(capsys, "vggsound", *options)
    checks.assert_cli_rerun_reuses(prepared)


def test_min_duration_change_redoes_parts(tmp_path):
    corpus = fixture.write_fixture(tmp_path)
    out = tmp_path / "m"
    assert len(list(prepare_vggsound(corpus, out)["test"])) == 1
    test = prepare_vggsound(corpus, out, min_duration=0.25)["test"]  # same items, other option
    assert [c.id for c in test] == ["vggsound_---g-f_I2yQ_000001", "vggsound_Xk9_-pQ2mZs_000020"]
