"""Tests for the Speech Commands v0.02 prepare module on a tiny fake corpus (real layout)."""

from __future__ import annotations

import prepare_checks as checks
import pytest
from corpus_fixtures import speechcommands as fx

from toolkit.data.cuts import cut_custom, cut_labels
from toolkit.data.dataset import load_mono
from toolkit.data.prepare.common import manifest_path
from toolkit.data.prepare.speechcommands import prepare_speechcommands, silence_windows


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return fx.write_fixture(tmp_path_factory.mktemp("sc"))


@pytest.fixture(scope="module")
def all_classes(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("sc_all")
    cuts = prepare_speechcommands(corpus, out, **fx.PREPARE_OPTIONS)
    return out, {s: list(c) for s, c in cuts.items()}


@pytest.fixture(scope="module")
def v2_12(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("sc_12")
    cuts = prepare_speechcommands(corpus, out, classes="v2_12")
    return out, {s: list(c) for s, c in cuts.items()}


def test_all_classes_splits_and_labels(all_classes):
    _, cuts = all_classes
    for split in ("train", "dev", "test"):
        got = {cut_custom(c)["orig_id"]: c for c in cuts[split]}
        assert set(got) == {r for r, (s, _) in fx.CLIPS.items() if s == split}
        for rel, cut in got.items():
            word, name = rel.split("/")
            assert cut.id == f"speechcommands_{word}_{name[:-4]}"
            assert cut_labels(cut) == {"speech_keyword": word}
            checks.assert_label_only_cut(cut, "speechcommands", "speech", split=split)
            assert cut.duration == pytest.approx(fx.CLIPS[rel][1])
            assert cut.start == 0
    assert not any("silence" in c.id for v in cuts.values() for c in v)


def test_skipped(all_classes):
    out, _ = all_classes
    dev, test, train = (
        checks.read_summary(out, "speechcommands", s) for s in ("dev", "test", "train")
    )
    assert dev["skipped"] == {"unreadable": 1} and test["skipped"] == {"missing": 1}
    assert train["skipped"] == {} and train["num_cuts"] == 4  # corrupt clip is listed in dev
    assert checks.skipped_reasons(out, "speechcommands", "test") == {fx.MISSING: "missing"}


def test_v2_12_labels_and_silence(v2_12):
    out, cuts = v2_12
    assert manifest_path(out, "speechcommands_v2_12", "train").is_file()
    for split, split_cuts in cuts.items():
        silence = [c for c in split_cuts if cut_labels(c)["speech_keyword"] == "silence"]
        assert len(silence) == fx.SILENCE_COUNTS[split]
        for cut in silence:
            assert cut.duration == pytest.approx(1.0)
            assert cut.recording.id.startswith("speechcommands_bg_")
            assert cut_custom(cut)["orig_id"].startswith("_background_noise_/")
            assert cut.start == int(cut.id.rsplit("_", 1)[1])
        words = {
            cut_custom(c)["orig_id"].split("/")[0]: cut_labels(c)["speech_keyword"]
            for c in split_cuts
            if c not in silence
        }
        for word, label in words.items():
            assert label == (word if word in ("yes", "no", "up") else "unknown")
    # silence windows of one noise file never overlap across splits
    spans = {
        s: {(c.recording.id, c.start) for c in v if "silence" in c.id} for s, v in cuts.items()
    }
    assert not spans["train"] & spans["dev"] and not spans["dev"] & spans["test"]
    white = sorted(c.start for c in cuts["test"] if "white_noise" in c.id)
    assert white == [9.0]


def test_silence_windows():
    w = silence_windows(95, 0.1, 0.1)
    assert (len(w["train"]), len(w["dev"]), len(w["test"])) == (75, 10, 10)
    assert w["test"][-1] == 94 and w["dev"][-1] + 1 == w["test"][0]
    assert silence_windows(3, 0.1, 0.1) == {"train": [0, 1, 2], "dev": [], "test": []}


def test_load_audio_rerun_and_option_change(corpus, v2_12):
    out, cuts = v2_12
    silence = next(c for c in cuts["train"] if "silence" in c.id)
    assert load_mono(silence, 16000).shape == (16000,)
    clip = next(c for c in cuts["test"] if "silence" not in c.id)
    assert load_mono(clip, 8000).shape == (round(clip.duration * 8000),)
    path = manifest_path(out, "speechcommands_v2_12", "train")
    checks.assert_rerun_reuses(path, lambda: prepare_speechcommands(corpus, out, classes="v2_12"))
    # changing the silence shares redoes the silence parts
    again = prepare_speechcommands(corpus, out, classes="v2_12", silence_test_fraction=0.3)
    n = sum("silence" in c.id for c in again["test"])
    assert n == 3 + 1  # white_noise 10 s → 3, running_tap 4 s → 1


def test_bad_options(corpus, tmp_path):
    with pytest.raises(ValueError, match="classes"):
        prepare_speechcommands(corpus, tmp_path, classes="v1_12")
    with pytest.raises(FileNotFoundError, match="validation_list"):
        prepare_speechcommands(tmp_path, tmp_path / "m")


def test_cli_lists_options(capsys):
    options = ("--classes", "--silence-dev-fraction", "--silence-test-fraction", "--force")
    checks.assert_cli_help_lists(capsys, "speechcommands", *options)
