"""Tests for the CREMA-D prepare module on a tiny fake corpus in the real layout."""

from __future__ import annotations

import json

import pytest
import soundfile as sf
from corpus_fixtures import cremad as fx

from toolkit.bin import prepare as prepare_cli
from toolkit.data.cuts import cut_custom, cut_labels
from toolkit.data.dataset import load_mono
from toolkit.data.prepare.common import manifest_path
from toolkit.data.prepare.cremad import actor_splits, parse_name, prepare_cremad


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("cremad")
    corpus = fx.write_fixture(root)
    out = root / "manifests"
    cuts = prepare_cremad(corpus, out, **fx.PREPARE_OPTIONS)
    return corpus, out, {s: list(c) for s, c in cuts.items()}


def test_parse_name():
    assert parse_name("1001_IEO_HAP_HI") == {
        "actor": "1001",
        "speech_emotion": "happy",
        "speech_sentence": "It's eleven o'clock",
        "speech_intensity": "high",
    }
    assert "speech_intensity" not in parse_name("1091_DFA_ANG_XX")
    assert parse_name("1001_DFA_ANG") is None and parse_name("1001_DFA_BOR_XX") is None


def test_actor_split_counts_and_determinism():
    actors = [str(1001 + k) for k in range(91)]
    splits = actor_splits(actors, 0.1, 0.2)
    counts = {s: sum(v == s for v in splits.values()) for s in ("train", "dev", "test")}
    assert counts == {"train": 64, "dev": 9, "test": 18}
    assert actor_splits(list(reversed(actors)), 0.1, 0.2) == splits


def test_speaker_disjoint_splits_and_labels(prepared):
    corpus, _, cuts = prepared
    assert set(cuts) == {"train", "dev", "test"}
    actors = {s: {cut_custom(c)["orig_id"][:4] for c in v} for s, v in cuts.items()}
    assert (len(actors["train"]), len(actors["dev"]), len(actors["test"])) == (4, 1, 1)
    assert not actors["train"] & actors["dev"] and not actors["train"] & actors["test"]
    seen = set()
    for split, split_cuts in cuts.items():
        for cut in split_cuts:
            custom = cut_custom(cut)
            stem = custom["orig_id"]
            seen.add(stem)
            actor, sent, emo, level = stem.split("_")
            assert cut.id == f"cremad_{stem}" and custom["split"] == split
            assert custom["caption"] == [] and custom["source"] == "cremad"
            assert custom["domain"] == "speech"
            info = sf.info(corpus / "AudioWAV" / f"{stem}.wav")
            assert cut.duration == pytest.approx(info.frames / info.samplerate)
            labels = cut_labels(cut)
            assert (
                labels["speech_emotion"]
                == {
                    "ANG": "anger",
                    "HAP": "happy",
                    "SAD": "sad",
                    "DIS": "disgust",
                    "FEA": "fear",
                    "NEU": "neutral",
                }[emo]
            )
            assert labels["speech_gender"] == fx.SEX[actor].lower()
            assert (labels.get("speech_intensity") is None) == (level == "XX")
            if sent == "IEO":
                assert labels["speech_sentence"] == "It's eleven o'clock"
    assert seen == set(fx.CLIPS)


def test_skipped(prepared):
    _, out, _ = prepared
    skipped = {}
    for split in ("train", "dev", "test"):
        summary = json.loads((out / f"cremad_cuts_{split}.summary.json").read_text())
        for reason, n in summary["skipped"].items():
            skipped[reason] = skipped.get(reason, 0) + n
        sk = out / f"cremad_cuts_{split}.skipped.tsv"
        if summary["skipped"]:
            ids = {line.split("\t")[0] for line in sk.read_text().splitlines()[1:]}
            assert ids <= {fx.MISSING, fx.EMPTY, fx.BAD_NAME}
    assert skipped == {"missing": 1, "unreadable": 1, "bad_metadata": 1}


def test_load_audio_and_rerun(prepared):
    corpus, out, cuts = prepared
    cut = cuts["train"][0]
    assert load_mono(cut, 16000).shape == (round(cut.duration * 16000),)
    path = manifest_path(out, "cremad", "test")
    before = path.stat().st_mtime_ns
    again = prepare_cremad(corpus, out)
    assert path.stat().st_mtime_ns == before
    assert [c.id for c in again["test"]] == [c.id for c in cuts["test"]]


def test_without_listing_or_demographics(tmp_path):
    corpus = fx.write_fixture(tmp_path)
    (corpus / "SentenceFilenames.csv").unlink()
    (corpus / "VideoDemographics.csv").unlink()
    cuts = prepare_cremad(corpus, tmp_path / "m", dev_fraction=0.0, test_fraction=0.5)
    assert set(cuts) == {"train", "test"}
    ids = sorted(c.id for v in cuts.values() for c in v)
    assert ids == sorted(f"cremad_{s}" for s in fx.CLIPS)  # the empty file is skipped
    assert all("speech_gender" not in cut_labels(c) for v in cuts.values() for c in v)
    with pytest.raises(ValueError, match="dev_fraction"):
        prepare_cremad(corpus, tmp_path / "m", dev_fraction=0.6, test_fraction=0.5)


def test_cli_lists_options(capsys):
    with pytest.raises(SystemExit) as e:
        prepare_cli.main(["cremad", "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    assert "--dev-fraction" in text and "--test-fraction" in text and "--num-jobs" in text
