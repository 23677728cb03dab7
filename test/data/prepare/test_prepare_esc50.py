"""ESC-50 prepare module on a fake corpus in the real layout (test/corpus_fixtures/esc50.py)."""

from __future__ import annotations

import pytest
from corpus_fixtures import esc50 as fixture

from toolkit.bin.prepare import main as prepare_main
from toolkit.data.cuts import cut_labels
from toolkit.data.dataset import load_mono
from toolkit.data.prepare.common import manifest_path
from toolkit.data.prepare.esc50 import prepare_esc50


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("esc50")
    corpus = fixture.write_fixture(root)
    out = root / "manifests"
    cuts = prepare_esc50(corpus, out, **fixture.PREPARE_OPTIONS)
    return corpus, out, {s: list(cs) for s, cs in cuts.items()}


def _skipped(out, split):
    path = out / f"esc50_cuts_{split}.skipped.tsv"
    if not path.is_file():
        return {}
    return {ln.split("\t")[0]: ln.split("\t")[1] for ln in path.read_text().splitlines()[1:]}


def test_folds_ids_labels(prepared):
    _, out, cuts = prepared
    assert sorted(cuts) == [f"fold{k}" for k in range(1, 6)]
    expected = {
        f"fold{fold}": [f"esc50_{name[:-4]}" for name, f, *_, state in fixture.ROWS
                        if f == fold and state == "ok"]
        for fold in range(1, 6)
    }  # fmt: skip
    assert {s: [c.id for c in cs] for s, cs in cuts.items()} == expected
    assert manifest_path(out, "esc50", "fold3").is_file()
    categories = {f"esc50_{r[0][:-4]}": r[3] for r in fixture.ROWS}
    for fold, cs in cuts.items():
        for cut in cs:
            custom = cut.supervisions[0].custom
            assert custom["fold"] == int(fold[4:]) and "split" not in custom
            assert custom["caption"] == [] and custom["caption_style"] == []
            assert custom["source"] == "esc50" and custom["domain"] == "sound"
            assert custom["orig_id"] == cut.id.removeprefix("esc50_") + ".wav"
            label = cut_labels(cut)["sound_event"]
            assert label == categories[cut.id].replace("_", " ")
            assert cut.duration == pytest.approx(fixture.SECONDS) and cut.start == 0
    assert cut_labels(cuts["fold4"][0]) == {"sound_event": "door wood knock"}


def test_skipped_and_audio(prepared):
    _, out, cuts = prepared
    assert _skipped(out, "fold3") == {"3-104632-A-12.wav": "missing"}
    assert _skipped(out, "fold4") == {"4-181286-A-10.wav": "unreadable"}
    assert all(_skipped(out, f"fold{k}") == {} for k in (1, 2, 5))
    assert load_mono(cuts["fold1"][0], 16000).shape == (8000,)


def test_cli_help_and_rerun_reuses(prepared, capsys):
    corpus, out, _ = prepared
    with pytest.raises(SystemExit):
        prepare_main(["esc50", "--help"])
    assert "--num-jobs" in capsys.readouterr().out
    paths = [manifest_path(out, "esc50", f"fold{k}") for k in range(1, 6)]
    before = [p.stat().st_mtime_ns for p in paths]
    assert prepare_main(["esc50", "--corpus-dir", str(corpus), "--output-dir", str(out)]) == 0
    assert [p.stat().st_mtime_ns for p in paths] == before


def test_missing_metadata_is_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="esc50.csv"):
        prepare_esc50(tmp_path, tmp_path / "out")
