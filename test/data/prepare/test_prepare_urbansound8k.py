"""UrbanSound8K prepare module on a fake corpus in the real layout
(test/corpus_fixtures/urbansound8k.py)."""

from __future__ import annotations

import prepare_checks as checks
import pytest
from corpus_fixtures import urbansound8k as fixture
from lhotse import MultiCut

from toolkit.data.cuts import cut_labels
from toolkit.data.dataset import load_mono
from toolkit.data.prepare.urbansound8k import prepare_urbansound8k

prepared = checks.prepared_fixture(fixture, prepare_urbansound8k, "urbansound8k")


def test_folds_ids_labels_formats(prepared):
    _, _, cuts = prepared
    assert sorted(cuts, key=lambda s: int(s[4:])) == [f"fold{k}" for k in range(1, 11)]
    got = {s: ids for s, ids in checks.ids_by_split(cuts).items() if ids}
    assert got == {
        "fold1": ["urbansound8k_101415-3-0-2", "urbansound8k_102305-6-0-0"],
        "fold5": ["urbansound8k_100032-3-0-0", "urbansound8k_100263-2-0-117"],
        "fold10": ["urbansound8k_100648-1-0-0"],
    }
    spec = {f"urbansound8k_{r[0][:-4]}": r for r in fixture.ROWS}
    for fold, cs in cuts.items():
        for cut in cs:
            row = spec[cut.id]
            sr, channels, _, seconds = row[-1]
            assert int(fold[4:]) == row[5]
            checks.assert_label_only_cut(cut, "urbansound8k", "sound", fold=row[5], orig_id=row[0])
            assert cut_labels(cut) == {"sound_event": row[7].replace("_", " ")}
            # the slice file is the whole cut: start/end in the csv refer to the Freesound source
            assert cut.start == 0 and cut.duration == pytest.approx(seconds)
            assert cut.sampling_rate == sr and cut.num_channels == channels
    stereo = cuts["fold5"][1]
    assert isinstance(stereo, MultiCut)
    assert load_mono(stereo, 16000).shape == (8000,)  # 0.5 s stereo 48 kHz → mono 16 kHz
    assert load_mono(cuts["fold1"][0], 16000).shape == (6400,)  # 0.4 s, 8-bit 8 kHz


def test_skipped(prepared):
    assert prepared.skipped("fold2") == {
        "100652-3-0-1.wav": "missing",
        "7061-6-0-0.wav": "unreadable",
    }
    assert prepared.skipped("fold1") == {}


def test_cli_help_and_rerun_reuses(prepared, capsys):
    checks.assert_cli_help_lists(capsys, "urbansound8k", "--corpus-dir")
    checks.assert_cli_rerun_reuses(prepared, "fold5")
