"""Tests for the Clotho v2 prepare module on a tiny fake corpus."""

from __future__ import annotations

import re

import prepare_checks as checks
import pytest
from corpus_fixtures import clotho as fixture

from toolkit.data.cuts import cut_captions, cut_custom, cut_labels
from toolkit.data.dataset import load_mono
from toolkit.data.prepare.clotho import prepare_clotho, safe_cut_id

prepared = checks.prepared_fixture(fixture, prepare_clotho, "clotho")


def test_safe_cut_id():
    assert safe_cut_id("rain_on_roof.wav") == "clotho_rain_on_roof"
    a = safe_cut_id("Santa Motor (Ambience) & Snow-Crunch.wav")
    assert re.fullmatch(r"clotho_Santa_Motor_Ambience_Snow-Crunch_[0-9a-f]{8}", a)
    # names that sanitise to the same string still get different ids
    assert safe_cut_id("a b.wav") != safe_cut_id("a&b.wav")


def test_splits_ids_and_orig_id(prepared):
    _, _, cuts = prepared
    assert set(cuts) == {"train", "dev", "test"}
    names = {s: sorted(cut_custom(c)["orig_id"] for c in cs) for s, cs in cuts.items()}
    assert names == {
        "train": ["01 A pug struggles to breathe 1_14_2008.wav", "Distorted AM Radio noise.wav"],
        "dev": ["Café ambiance, Brüssel #2.wav"],
        "test": ["birds-chirping.wav"],
    }
    for split, official in (
        ("train", "development"),
        ("dev", "validation"),
        ("test", "evaluation"),
    ):
        for cut in cuts[split]:
            orig_id = cut_custom(cut)["orig_id"]
            assert re.fullmatch(r"clotho_[A-Za-z0-9_.-]+", cut.id)
            assert cut.id == safe_cut_id(orig_id)
            checks.assert_custom(cut, split=official, audio_key=f"clotho:{orig_id}", domain="sound",
                          source="clotho")  # fmt: skip
            assert cut_labels(cut) == {}


def test_captions_and_durations(prepared):
    _, _, cuts = prepared
    radio = next(c for c in cuts["train"] if "Radio" in c.id)
    caps = cut_captions(radio)
    assert len(caps) == 5 and caps[2] == "An old radio hisses and buzzes loudly. (development 0)"
    checks.assert_custom(radio, caption_style=["short"] * 5)
    assert radio.duration == pytest.approx(1.0) and radio.sampling_rate == 44100
    birds = cuts["test"][0]
    assert len(cut_captions(birds)) == 4  # the empty caption_4 cell is dropped


def test_skipped(prepared):
    _, out, _ = prepared
    train = (out / "clotho_cuts_train.skipped.tsv").read_text().splitlines()
    dev = (out / "clotho_cuts_dev.skipped.tsv").read_text().splitlines()
    assert train[1].startswith("Santa Motor (Ambience) & Snow-Crunch.wav\tmissing\t")
    assert dev[1].startswith("rain_on_roof.wav\tunreadable\t")
    assert len(train) == len(dev) == 2
    assert not (out / "clotho_cuts_test.skipped.tsv").exists()


def test_load_audio(prepared):
    _, _, cuts = prepared
    cut = next(c for c in cuts["dev"])
    assert load_mono(cut, 16000).shape == (12800,)  # 0.8 s


def test_rerun_reuses_and_cli(prepared, capsys):
    corpus, out, _ = prepared
    checks.assert_rerun_reuses(prepared.manifest("dev"), lambda: prepare_clotho(corpus, out))
    checks.assert_cli_help_lists(capsys, "clotho", "--min-duration")


def test_no_csv_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="clotho_captions"):
        prepare_clotho(tmp_path, tmp_path / "out")
