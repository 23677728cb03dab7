"""NSynth prepare module on a fake corpus in the real layout (test/corpus_fixtures/nsynth.py)."""

from __future__ import annotations

import json
import shutil

import pytest
from corpus_fixtures import nsynth as fixture

from toolkit.bin.prepare import main as prepare_main
from toolkit.data.cuts import cut_labels
from toolkit.data.dataset import load_mono
from toolkit.data.prepare.common import manifest_path
from toolkit.data.prepare.nsynth import iter_json_object, midi_to_note, prepare_nsynth


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("nsynth")
    corpus = fixture.write_fixture(root)
    out = root / "manifests"
    cuts = prepare_nsynth(corpus, out, **fixture.PREPARE_OPTIONS)
    return corpus, out, {s: list(cs) for s, cs in cuts.items()}


def _skipped(out, split):
    path = out / f"nsynth_cuts_{split}.skipped.tsv"
    if not path.is_file():
        return {}
    return {ln.split("\t")[0]: ln.split("\t")[1] for ln in path.read_text().splitlines()[1:]}


def test_splits_ids_labels(prepared):
    _, _, cuts = prepared
    assert {s: [c.id for c in cs] for s, cs in cuts.items()} == {
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
            custom = cut.supervisions[0].custom
            assert custom["split"] == split and custom["source"] == "nsynth"
            assert custom["domain"] == "music" and custom["caption"] == []
            assert custom["orig_id"] == cut.id.removeprefix("nsynth_")
            assert cut.duration == pytest.approx(fixture.SECONDS) and cut.sampling_rate == 16000
    assert load_mono(cuts["dev"][0], 16000).shape == (16000,)


def test_skipped(prepared):
    _, out, _ = prepared
    assert _skipped(out, "train") == {"guitar_acoustic_010-066-100": "missing"}
    assert _skipped(out, "dev") == {"brass_acoustic_046-060-075": "unreadable"}
    assert _skipped(out, "test") == {"organ_electronic_007-055-100": "bad_metadata"}


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
    corpus, out, _ = prepared
    with pytest.raises(SystemExit):
        prepare_main(["nsynth", "--help"])
    assert "--force" in capsys.readouterr().out
    path = manifest_path(out, "nsynth", "train")
    before = path.stat().st_mtime_ns
    assert prepare_main(["nsynth", "--corpus-dir", str(corpus), "--output-dir", str(out)]) == 0
    assert path.stat().st_mtime_ns == before
