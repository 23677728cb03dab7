"""GTZAN prepare module on a fake corpus in the Kaggle layout (test/corpus_fixtures/gtzan.py)."""

from __future__ import annotations

import prepare_checks as checks
import pytest
from corpus_fixtures import gtzan as fixture

from toolkit.data.cuts import cut_labels
from toolkit.data.dataset import load_mono
from toolkit.data.prepare.gtzan import prepare_gtzan, stratified_split

prepared = checks.prepared_fixture(fixture, prepare_gtzan, "gtzan")


def test_list_splits_ids_labels(prepared):
    _, _, cuts = prepared
    lists = dict(zip(("train", "dev", "test"), fixture.LISTS.values(), strict=True))
    bad = {fixture.CORRUPT, "hiphop.00062"}
    assert checks.ids_by_split(cuts) == {
        s: [f"gtzan_{x}" for x in stems if x not in bad] for s, stems in lists.items()
    }
    for split, cs in cuts.items():
        for cut in cs:
            genre = cut.id.removeprefix("gtzan_").split(".")[0]
            assert cut_labels(cut) == {"music_genre": "hip hop" if genre == "hiphop" else genre}
            orig_id = f"{genre}/{cut.id.removeprefix('gtzan_')}"
            checks.assert_label_only_cut(cut, "gtzan", "music", split=split, orig_id=orig_id)
            assert cut.duration == pytest.approx(fixture.SECONDS) and cut.sampling_rate == 22050
    assert load_mono(cuts["dev"][0], 16000).shape == (8000,)


def test_skipped(prepared):
    assert prepared.skipped_by_split() == {
        "train": {"jazz/jazz.00054": "unreadable"},
        "dev": {},
        "test": {"hiphop/hiphop.00062": "missing"},
    }


def test_stratified_split(prepared, tmp_path):
    corpus, _, _ = prepared
    cuts = prepare_gtzan(corpus, tmp_path / "m", dev_fraction=0.2, test_fraction=0.2)
    ids = checks.ids_by_split(cuts)
    # one dev and one test excerpt per genre (jazz loses its corrupt file wherever it falls)
    for split in ("dev", "test"):
        genres = sorted(i.split("_")[1].split(".")[0] for i in ids[split])
        assert set(genres) <= set(fixture.FILES) and len(genres) == len(set(genres)) >= 3
    assert sum(len(v) for v in ids.values()) == 19
    skipped = [checks.skipped_reasons(tmp_path / "m", "gtzan", s) for s in ("train", "dev", "test")]
    assert skipped[0] | skipped[1] | skipped[2] == {"jazz/jazz.00054": "unreadable"}
    again = prepare_gtzan(corpus, tmp_path / "m2", dev_fraction=0.2, test_fraction=0.2)
    assert checks.ids_by_split(again) == ids  # deterministic
    split = stratified_split({"a": [f"a.{i:05d}" for i in range(100)]}, 0.1, 0.2)
    assert [list(split.values()).count(s) for s in ("train", "dev", "test")] == [70, 10, 20]


def test_errors(prepared, tmp_path):
    corpus, _, _ = prepared
    with pytest.raises(ValueError, match="all of"):
        prepare_gtzan(corpus, tmp_path / "m", train_list="train_filtered.txt")
    with pytest.raises(FileNotFoundError, match="genre folders"):
        prepare_gtzan(tmp_path, tmp_path / "m")


def test_cli_help_and_rerun_reuses(prepared, capsys):
    corpus, out, _ = prepared
    options = ("--genres-dir", "--train-list", "--dev-list", "--test-list", "--dev-fraction")
    checks.assert_cli_help_lists(capsys, "gtzan", *options)
    args = []
    for key, value in fixture.PREPARE_OPTIONS.items():
        args += ["--" + key.replace("_", "-"), value]
    checks.assert_cli_rerun_reuses(prepared, "train", *args)
