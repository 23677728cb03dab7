"""FSD50K prepare module on a fake corpus in the real layout (test/corpus_fixtures/fsd50k.py)."""

from __future__ import annotations

import prepare_checks as checks
import pytest
from corpus_fixtures import fsd50k as fixture

from toolkit.data.cuts import cut_captions, cut_labels
from toolkit.data.dataset import load_mono
from toolkit.data.prepare.fsd50k import prepare_fsd50k, readable_label

prepared = checks.prepared_fixture(fixture, prepare_fsd50k, "fsd50k")


def test_splits_ids_and_labels(prepared):
    _, _, cuts = prepared
    assert checks.ids_by_split(cuts) == {
        "train": ["fsd50k_64760", "fsd50k_16399"],
        "dev": ["fsd50k_102863", "fsd50k_21914"],
        "test": ["fsd50k_37199", "fsd50k_8101"],
    }
    guitar = cuts["train"][0]
    assert cut_labels(guitar) == {
        "sound_events": [
            "Electric guitar", "Guitar", "Plucked string instrument", "Musical instrument", "Music"
        ]
    }  # fmt: skip
    assert cut_labels(cuts["dev"][1])["sound_events"][0] == "Male speech and man speaking"
    for split, cs in cuts.items():
        for cut in cs:
            orig_id = cut.id.removeprefix("fsd50k_")
            checks.assert_label_only_cut(cut, "fsd50k", "sound", split=split, orig_id=orig_id)
            assert "audio_key" not in cut.supervisions[0].custom
            assert cut_captions(cut) == [] and cut.recording.id == cut.id


def test_durations_and_audio(prepared):
    _, _, cuts = prepared
    expected = {f"fsd50k_{f}": s for f, _, _, s in fixture.DEV + fixture.EVAL if s}
    for cut in (c for cs in cuts.values() for c in cs):
        assert cut.start == 0 and cut.duration == pytest.approx(expected[cut.id])
        assert cut.sampling_rate == 44100
    audio = load_mono(cuts["test"][0], 16000)
    assert audio.shape == (round(0.6 * 16000),)


def test_skipped(prepared):
    assert prepared.skipped_by_split() == {
        "train": {"16401": "missing", "16405": "bad_metadata"},
        "dev": {},
        "test": {"175151": "unreadable"},
    }
    assert prepared.summary("test")["skipped"]["unreadable"] == 1


def test_cli_help_and_rerun_reuses(prepared, capsys):
    options = ("--ground-truth-dir", "--dev-audio-dir", "--eval-audio-dir", "--min-duration")
    checks.assert_cli_help_lists(capsys, "fsd50k", *options)
    checks.assert_cli_rerun_reuses(prepared)


def test_readable_label_and_missing_ground_truth(tmp_path):
    assert readable_label("Chink_and_clink") == "Chink and clink"
    with pytest.raises(FileNotFoundError, match="dev.csv"):
        prepare_fsd50k(tmp_path, tmp_path / "out")
