"""UrbanSound8K prepare module on a fake corpus in the real layout
(test/corpus_fixtures/urbansound8k.py)."""

from __future__ import annotations

import pytest
from corpus_fixtures import urbansound8k as fixture
from lhotse import MultiCut

from toolkit.bin.prepare import main as prepare_main
from toolkit.data.cuts import cut_labels
from toolkit.data.dataset import load_mono
from toolkit.data.prepare.common import manifest_path
from toolkit.data.prepare.urbansound8k import prepare_urbansound8k


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("us8k")
    corpus = fixture.write_fixture(root)
    out = root / "manifests"
    cuts = prepare_urbansound8k(corpus, out, **fixture.PREPARE_OPTIONS)
    return corpus, out, {s: list(cs) for s, cs in cuts.items()}


def _skipped(out, split):
    path = out / f"urbansound8k_cuts_{split}.skipped.tsv"
    if not path.is_file():
        return {}
    return {ln.split("\t")[0]: ln.split("\t")[1] for ln in path.read_text().splitlines()[1:]}


def test_folds_ids_labels_formats(prepared):
    _, _, cuts = prepared
    assert sorted(cuts, key=lambda s: int(s[4:])) == [f"fold{k}" for k in range(1, 11)]
    got = {s: [c.id for c in cs] for s, cs in cuts.items() if cs}
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
            custom = cut.supervisions[0].custom
            assert custom["fold"] == int(fold[4:]) == row[5]
            assert custom["caption"] == [] and custom["orig_id"] == row[0]
            assert custom["source"] == "urbansound8k" and custom["domain"] == "sound"
            assert cut_labels(cut) == {"sound_event": row[7].replace("_", " ")}
            # the slice file is the whole cut: start/end in the csv refer to the Freesound source
            assert cut.start == 0 and cut.duration == pytest.approx(seconds)
            assert cut.sampling_rate == sr and cut.num_channels == channels
    stereo = cuts["fold5"][1]
    assert isinstance(stereo, MultiCut)
    assert load_mono(stereo, 16000).shape == (8000,)  # 0.5 s stereo 48 kHz → mono 16 kHz
    assert load_mono(cuts["fold1"][0], 16000).shape == (6400,)  # 0.4 s, 8-bit 8 kHz


def test_skipped(prepared):
    _, out, _ = prepared
    assert _skipped(out, "fold2") == {"100652-3-0-1.wav": "missing", "7061-6-0-0.wav": "unreadable"}
    assert _skipped(out, "fold1") == {}


def test_cli_help_and_rerun_reuses(prepared, capsys):
    corpus, out, _ = prepared
    with pytest.raises(SystemExit):
        prepare_main(["urbansound8k", "--help"])
    assert "--corpus-dir" in capsys.readouterr().out
    path = manifest_path(out, "urbansound8k", "fold5")
    before = path.stat().st_mtime_ns
    assert (
        prepare_main(["urbansound8k", "--corpus-dir", str(corpus), "--output-dir", str(out)]) == 0
    )
    assert path.stat().st_mtime_ns == before
