"""ESC-50 prepare module on a fake corpus in the real layout (test/corpus_fixtures/esc50.py)."""

from __future__ import annotations

import prepare_checks as checks
import pytest
from corpus_fixtures import esc50 as fixture

from toolkit.bin.prepare import main as prepare_main
from toolkit.data.cuts import cut_labels
from toolkit.data.dataset import load_mono
from toolkit.data.prepare.common import manifest_path
from toolkit.data.prepare.esc50 import prepare_esc50

prepared = checks.prepared_fixture(fixture, prepare_esc50, "esc50")


def test_folds_ids_labels(prepared):
    _, out, cuts = prepared
    assert sorted(cuts) == [f"fold{k}" for k in range(1, 6)]
    expected = {
        f"fold{fold}": [f"esc50_{name[:-4]}" for name, f, *_, state in fixture.ROWS
                        if f == fold and state == "ok"]
        for fold in range(1, 6)
    }  # fmt: skip
    assert checks.ids_by_split(cuts) == expected
    assert manifest_path(out, "esc50", "fold3").is_file()
    categories = {f"esc50_{r[0][:-4]}": r[3] for r in fixture.ROWS}
    for fold, cs in cuts.items():
        for cut in cs:
            orig_id = cut.id.removeprefix("esc50_") + ".wav"
            checks.assert_label_only_cut(cut, "esc50", "sound", fold=int(fold[4:]), orig_id=orig_id)
            assert "split" not in cut.supervisions[0].custom
            label = cut_labels(cut)["sound_event"]
            assert label == categories[cut.id].replace("_", " ")
            assert cut.duration == pytest.approx(fixture.SECONDS) and cut.start == 0
    assert cut_labels(cuts["fold4"][0]) == {"sound_event": "door wood knock"}


def test_skipped_and_audio(prepared):
    cuts = prepared.cuts
    assert prepared.skipped("fold3") == {"3-104632-A-12.wav": "missing"}
    assert prepared.skipped("fold4") == {"4-181286-A-10.wav": "unreadable"}
    assert all(prepared.skipped(f"fold{k}") == {} for k in (1, 2, 5))
    assert load_mono(cuts["fold1"][0], 16000).shape == (8000,)


def test_cli_help_and_rerun_reuses(prepared, capsys):
    corpus, out, _ = prepared
    checks.assert_cli_help_lists(capsys, "esc50", "--num-jobs")
    paths = [manifest_path(out, "esc50", f"fold{k}") for k in range(1, 6)]
    before = [p.stat().st_mtime_ns for p in paths]
    argv = ["esc50", "--corpus-dir", str(corpus), "--output-dir", str(out)]
    assert checks.assert_rerun_reuses(paths[0], lambda: prepare_main(argv)) == 0
    assert [p.stat().st_mtime_ns for p in paths] == before


def test_missing_metadata_is_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="esc50.csv"):
        prepare_esc50(tmp_path, tmp_path / "out")
