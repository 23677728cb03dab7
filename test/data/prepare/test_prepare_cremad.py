"""Tests for the CREMA-D prepare module on a tiny fake corpus in the real layout."""

from __future__ import annotations

import prepare_checks as checks
import pytest
import soundfile as sf
from corpus_fixtures import cremad as fx

from toolkit.data.cuts import cut_custom, cut_labels
from toolkit.data.dataset import load_mono
from toolkit.data.prepare.cremad import actor_splits, parse_name, prepare_cremad

prepared = checks.prepared_fixture(fx, prepare_cremad, "cremad")


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
            stem = cut_custom(cut)["orig_id"]
            seen.add(stem)
            actor, sent, emo, level = stem.split("_")
            assert cut.id == f"cremad_{stem}"
            checks.assert_label_only_cut(cut, "cremad", "speech", split=split)
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
    skipped = {}
    for split in ("train", "dev", "test"):
        summary = prepared.summary(split)
        for reason, n in summary["skipped"].items():
            skipped[reason] = skipped.get(reason, 0) + n
        if summary["skipped"]:
            ids = set(prepared.skipped(split))  # the listed ids: the bad files only
            assert ids and ids <= {fx.MISSING, fx.EMPTY, fx.BAD_NAME}
    assert skipped == {"missing": 1, "unreadable": 1, "bad_metadata": 1}


def test_load_audio_and_rerun(prepared):
    corpus, out, cuts = prepared
    cut = cuts["train"][0]
    assert load_mono(cut, 16000).shape == (round(cut.duration * 16000),)
    checks.assert_rerun_gives_same_cuts(prepared, "test", lambda: prepare_cremad(corpus, out))


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
    checks.assert_cli_help_lists(
        capsys, "cremad", "--dev-fraction", "--test-fraction", "--num-jobs"
    )
