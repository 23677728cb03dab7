"""GTZAN prepare module on a fake corpus in the Kaggle layout (test/corpus_fixtures/gtzan.py)."""

from __future__ import annotations

import pytest
from corpus_fixtures import gtzan as fixture

from toolkit.bin.prepare import main as prepare_main
from toolkit.data.cuts import cut_labels
from toolkit.data.dataset import load_mono
from toolkit.data.prepare.common import manifest_path
from toolkit.data.prepare.gtzan import prepare_gtzan, stratified_split


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("gtzan")
    corpus = fixture.write_fixture(root)
    out = root / "manifests"
    cuts = prepare_gtzan(corpus, out, **fixture.PREPARE_OPTIONS)
    return corpus, out, {s: list(cs) for s, cs in cuts.items()}


def _skipped(out, split):
    path = out / f"gtzan_cuts_{split}.skipped.tsv"
    if not path.is_file():
        return {}
    return {ln.split("\t")[0]: ln.split("\t")[1] for ln in path.read_text().splitlines()[1:]}


def test_list_splits_ids_labels(prepared):
    _, _, cuts = prepared
    lists = dict(zip(("train", "dev", "test"), fixture.LISTS.values(), strict=True))
    bad = {fixture.CORRUPT, "hiphop.00062"}
    assert {s: [c.id for c in cs] for s, cs in cuts.items()} == {
        s: [f"gtzan_{x}" for x in stems if x not in bad] for s, stems in lists.items()
    }
    for split, cs in cuts.items():
        for cut in cs:
            genre = cut.id.removeprefix("gtzan_").split(".")[0]
            custom = cut.supervisions[0].custom
            assert cut_labels(cut) == {"music_genre": "hip hop" if genre == "hiphop" else genre}
            assert custom["split"] == split and custom["caption"] == []
            assert custom["orig_id"] == f"{genre}/{cut.id.removeprefix('gtzan_')}"
            assert custom["source"] == "gtzan" and custom["domain"] == "music"
            assert cut.duration == pytest.approx(fixture.SECONDS) and cut.sampling_rate == 22050
    assert load_mono(cuts["dev"][0], 16000).shape == (8000,)


def test_skipped(prepared):
    _, out, _ = prepared
    assert _skipped(out, "train") == {"jazz/jazz.00054": "unreadable"}
    assert _skipped(out, "test") == {"hiphop/hiphop.00062": "missing"}
    assert _skipped(out, "dev") == {}


def test_stratified_split(prepared, tmp_path):
    corpus, _, _ = prepared
    cuts = prepare_gtzan(corpus, tmp_path / "m", dev_fraction=0.2, test_fraction=0.2)
    ids = {s: [c.id for c in cs] for s, cs in cuts.items()}
    # one dev and one test excerpt per genre (jazz loses its corrupt file wherever it falls)
    for split in ("dev", "test"):
        genres = sorted(i.split("_")[1].split(".")[0] for i in ids[split])
        assert set(genres) <= set(fixture.FILES) and len(genres) == len(set(genres)) >= 3
    assert sum(len(v) for v in ids.values()) == 19
    assert _skipped(tmp_path / "m", "train") | _skipped(tmp_path / "m", "dev") | _skipped(
        tmp_path / "m", "test"
    ) == {"jazz/jazz.00054": "unreadable"}
    again = prepare_gtzan(corpus, tmp_path / "m2", dev_fraction=0.2, test_fraction=0.2)
    assert {s: [c.id for c in cs] for s, cs in again.items()} == ids  # deterministic
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
    with pytest.raises(SystemExit):
        prepare_main(["gtzan", "--help"])
    help_text = capsys.readouterr().out
    for opt in ("--genres-dir", "--train-list", "--dev-list", "--test-list", "--dev-fraction"):
        assert opt in help_text
    path = manifest_path(out, "gtzan", "train")
    before = path.stat().st_mtime_ns
    args = ["gtzan", "--corpus-dir", str(corpus), "--output-dir", str(out)]
    for key, value in fixture.PREPARE_OPTIONS.items():
        args += ["--" + key.replace("_", "-"), value]
    assert prepare_main(args) == 0
    assert path.stat().st_mtime_ns == before
