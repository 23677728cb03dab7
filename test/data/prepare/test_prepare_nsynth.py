"""NSynth prepare module on a fake corpus in the real layout (test/corpus_fixtures/nsynth.py)."""

from __future__ import annotations

import json
import shutil

import prepare_checks as checks
import pytest
from corpus_fixtures import nsynth as fixture

from toolkit.data.cuts import cut_labels
from toolkit.data.dataset import load_mono
from toolkit.data.prepare.nsynth import iter_json_object, midi_to_note, prepare_nsynth

prepared = checks.prepared_fixture(fixture, prepare_nsynth, "nsynth")


def test_splits_ids_labels(prepared):
    _, _, cuts = prepared
    assert checks.ids_by_split(cuts) == {
        "train": ["nsynth_bass_synthetic_033-022-050", "nsynth_synth_lead_synthetic_000-060-025"],
        "dev": ["nsynth_keyboard_electronic_001-021-127"],
        "test": ["nsynth_vocal_acoustic_003-069-050"],
    }
    assert cut_labels(cuts["train"][1]) == {
        "music_instrument": "synth lead", "music_source": "synthetic", "music_pitch": "C4",
        "music_qualities": ["bright", "fast decay"],
    }  # fmt: skip
    assert cut_labels(cuts["train"][0])["music_pitch"] == "A#0"  # MIDI 22
    assert cut_labels(cuts["dev"][0])["music_qualities"] == []
    assert cut_labels(cuts["test"][0])["music_pitch"] == "A4"
    for split, cs in cuts.items():
        for cut in cs:
            orig_id = cut.id.removeprefix("nsynth_")
            checks.assert_label_only_cut(cut, "nsynth", "music", split=split, orig_id=orig_id)
            assert cut.duration == pytest.approx(fixture.SECONDS) and cut.sampling_rate == 16000
    assert load_mono(cuts["dev"][0], 16000).shape == (16000,)


def test_skipped(prepared):
    assert prepared.skipped_by_split() == {
        "train": {"guitar_acoustic_010-066-100": "missing"},
        "dev": {"brass_acoustic_046-060-075": "unreadable"},
        "test": {"organ_electronic_007-055-100": "bad_metadata"},
    }


def test_midi_to_note():
    assert [midi_to_note(p) for p in (21, 60, 61, 69, 108, 0, 127)] == [
        "A0", "C4", "C#4", "A4", "C8", "C-1", "G9"
    ]  # fmt: skip
    with pytest.raises(ValueError):
        midi_to_note(128)


@pytest.mark.parametrize("chunk", [1, 5, 64, 1 << 20])
def test_iter_json_object_matches_json_load(tmp_path, chunk):
    data = {f"n{i}": {"pitch": i, "q": ["a"] * (i % 3), "s": "\u00e9" * i} for i in range(30)}
    data["last"] = 123456
    for indent in (None, 2):
        path = tmp_path / "examples.json"
        path.write_text(json.dumps(data, indent=indent))
        assert list(iter_json_object(path, chunk)) == list(data.items())
    path.write_text('{"a": {"b": 1}')  # truncated
    with pytest.raises(ValueError, match="examples.json"):
        list(iter_json_object(path, chunk))


def test_missing_split_folder_is_left_out(prepared, tmp_path):
    corpus, _, _ = prepared
    part = tmp_path / "nsynth"
    shutil.copytree(corpus / "nsynth-test", part / "nsynth-test")
    assert list(prepare_nsynth(part, tmp_path / "m")) == ["test"]
    with pytest.raises(FileNotFoundError, match="examples.json"):
        prepare_nsynth(tmp_path / "empty", tmp_path / "m2")


def test_cli_help_and_rerun_reuses(prepared, capsys):
    checks.assert_cli_help_lists(capsys, "nsynth", "--force")
    checks.assert_cli_rerun_reuses(prepared)
