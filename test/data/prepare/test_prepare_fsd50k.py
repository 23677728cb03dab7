"""FSD50K prepare module on a fake corpus in the real layout (test/corpus_fixtures/fsd50k.py)."""

from __future__ import annotations

import pytest
from corpus_fixtures import fsd50k as fixture

from toolkit.bin.prepare import main as prepare_main
from toolkit.data.cuts import cut_captions, cut_labels
from toolkit.data.dataset import load_mono
from toolkit.data.prepare.common import manifest_path
from toolkit.data.prepare.fsd50k import prepare_fsd50k, readable_label


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("fsd50k")
    corpus = fixture.write_fixture(root)
    out = root / "manifests"
    cuts = prepare_fsd50k(corpus, out, **fixture.PREPARE_OPTIONS)
    return corpus, out, {s: list(cs) for s, cs in cuts.items()}


def _skipped(out, split):
    path = out / f"fsd50k_cuts_{split}.skipped.tsv"
    if not path.is_file():
        return {}
    lines = path.read_text().splitlines()
    assert lines[0] == "id\treason\tdetail"
    return {line.split("\t")[0]: line.split("\t")[1] for line in lines[1:]}


def test_splits_ids_and_labels(prepared):
    _, _, cuts = prepared
    assert {s: [c.id for c in cs] for s, cs in cuts.items()} == {
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
            custom = cut.supervisions[0].custom
            assert custom["split"] == split and custom["source"] == "fsd50k"
            assert custom["domain"] == "sound" and "audio_key" not in custom
            assert custom["orig_id"] == cut.id.removeprefix("fsd50k_")
            assert custom["caption"] == [] and custom["caption_style"] == []
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
    _, out, _ = prepared
    assert _skipped(out, "train") == {"16401": "missing", "16405": "bad_metadata"}
    assert _skipped(out, "dev") == {}
    assert _skipped(out, "test") == {"175151": "unreadable"}
    summary = (out / "fsd50k_cuts_test.summary.json").read_text()
    assert '"unreadable": 1' in summary


def test_cli_help_and_rerun_reuses(prepared, capsys):
    corpus, out, _ = prepared
    with pytest.raises(SystemExit):
        prepare_main(["fsd50k", "--help"])
    help_text = capsys.readouterr().out
    for opt in ("--ground-truth-dir", "--dev-audio-dir", "--eval-audio-dir", "--min-duration"):
        assert opt in help_text
    path = manifest_path(out, "fsd50k", "train")
    before = path.stat().st_mtime_ns
    assert prepare_main(["fsd50k", "--corpus-dir", str(corpus), "--output-dir", str(out)]) == 0
    assert path.stat().st_mtime_ns == before


def test_readable_label_and_missing_ground_truth(tmp_path):
    assert readable_label("Chink_and_clink") == "Chink and clink"
    with pytest.raises(FileNotFoundError, match="dev.csv"):
        prepare_fsd50k(tmp_path, tmp_path / "out")
