"""Tests for the shared caption-cut helpers (toolkit.data.cuts)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import soundfile as sf
from lhotse import CutSet, MonoCut, MultiCut, Recording

from toolkit.data.cuts import (
    METADATA_KEYS,
    RESERVED_KEYS,
    caption_cut,
    clean_captions,
    cut_captions,
    cut_labels,
    label_tasks,
    make_caption_cut,
    reject_empty_captions,
)
from toolkit.data.dataset import load_mono


@pytest.fixture
def wav(tmp_path):
    path = tmp_path / "clip.flac"
    sf.write(path, 0.1 * np.sin(np.arange(24000) / 10.0), 16000, format="FLAC")
    return path


def _cut(wav, cut_id, captions, domain="sound", labels=None):
    styles = ["tags", "short", "detailed", "speaking_style"][: len(captions)]
    return make_caption_cut(wav, cut_id, captions, styles, domain, "unit", labels or {})


def test_reserved_keys():
    assert RESERVED_KEYS == {"caption", "caption_style", "domain", "source", "orig_id"}
    assert METADATA_KEYS == {"audio_key", "caption_source", "fold", "split"}


def test_metadata_is_not_a_label(wav):
    cut = make_caption_cut(
        wav, "m1", ["a dog"], ["short"], "sound", "unit", {"sound_events": ["dog", "rain"]},
        metadata={"audio_key": "yt:abc:30", "fold": 3, "split": "train"},
    )  # fmt: skip
    custom = cut.supervisions[0].custom
    assert custom["audio_key"] == "yt:abc:30" and custom["fold"] == 3
    assert cut_labels(cut) == {"sound_events": ["dog", "rain"]}
    assert label_tasks([cut]) == ["sound_events"]
    with pytest.raises(ValueError, match="unknown metadata key 'foo'"):
        make_caption_cut(wav, "m2", ["a"], ["short"], "sound", "unit", metadata={"foo": 1})
    with pytest.raises(ValueError, match="invalid label key 'color_red'"):
        make_caption_cut(wav, "m3", ["a"], ["short"], "sound", "unit", {"color_red": "x"})


def test_caption_cut_segment_and_stereo(tmp_path):
    path = tmp_path / "long.wav"
    left = np.full(8000 * 5, 0.1)
    sf.write(path, np.stack([left, 3 * left], 1), 8000)  # 5 s stereo at 8 kHz
    rec = Recording.from_file(path, recording_id="long")
    cut = caption_cut(rec, "long_seg1", ["x"], ["short"], "music", "unit", start=2.0, duration=1.5)
    assert isinstance(cut, MultiCut) and cut.channel == [0, 1]
    assert (cut.start, cut.duration) == (2.0, 1.5)
    sup = cut.supervisions[0]
    assert sup.start == 0 and sup.duration == 1.5 and sup.recording_id == "long"
    audio = load_mono(cut, 16000)
    assert audio.shape == (24000,) and np.allclose(audio[100:-100], 0.2, atol=1e-3)
    assert caption_cut(rec, "tail", ["x"], ["short"], "music", "unit", start=4.0).duration == 1.0
    with pytest.raises(ValueError, match="outside recording long"):
        caption_cut(rec, "bad", ["x"], ["short"], "music", "unit", start=4.0, duration=2.0)


def test_clean_captions():
    assert clean_captions(["  a  dog\n barks ", "", " \t ", "rain"]) == ["a dog barks", "rain"]
    assert clean_captions([]) == []


def test_make_caption_cut(wav):
    cut = make_caption_cut(
        wav,
        "unit-000",
        ["  A dog\nbarks twice. ", "   ", "dog bark, two barks"],
        ["short", "detailed", "tags"],
        "sound",
        "unit",
        {"sound_event": "dog bark", "sound_count": "two"},
        orig_id="orig/1",
    )
    assert isinstance(cut, MonoCut)
    assert cut.id == cut.recording.id == "unit-000"
    assert cut.duration == pytest.approx(1.5) and cut.sampling_rate == 16000
    assert len(cut.supervisions) == 1
    sup = cut.supervisions[0]
    assert sup.start == 0 and sup.duration == cut.duration
    assert sup.text == "A dog barks twice."
    # the empty caption is dropped together with its style
    assert sup.custom["caption"] == ["A dog barks twice.", "dog bark, two barks"]
    assert sup.custom["caption_style"] == ["short", "tags"]
    assert sup.custom["domain"] == "sound" and sup.custom["source"] == "unit"
    assert sup.custom["orig_id"] == "orig/1"
    assert cut_labels(cut) == {"sound_event": "dog bark", "sound_count": "two"}
    assert cut.load_audio().shape == (1, 24000)
    # survives a manifest round trip
    back = CutSet.from_dicts([cut.to_dict()])[cut.id]
    assert cut_captions(back) == ["A dog barks twice.", "dog bark, two barks"]


@pytest.mark.parametrize(
    "captions, styles, domain, labels",
    [
        (["a", "b"], ["short"], "sound", {}),  # length mismatch
        (["a"], ["poem"], "sound", {}),  # unknown style
        (["a"], ["short"], "video", {}),  # unknown domain
        (["a"], ["short"], "sound", {"caption": "x"}),  # reserved key
        (["a"], ["short"], "sound", {"Event": "x"}),  # not <domain>_<attribute>
    ],
)
def test_make_caption_cut_rejects_bad_input(wav, captions, styles, domain, labels):
    with pytest.raises(ValueError):
        make_caption_cut(wav, "bad", captions, styles, domain, "unit", labels)


def test_reject_empty_captions(wav, caplog):
    good = _cut(wav, "good", ["a siren wails", "siren"])
    blank = _cut(wav, "blank", ["   ", "\n"])
    empty = _cut(wav, "empty", [])
    nosup = MonoCut("nosup", 0.0, 1.0, 0, recording=good.recording)
    with caplog.at_level(logging.WARNING, logger="toolkit.data.cuts"):
        kept, dropped = reject_empty_captions(CutSet.from_cuts([good, blank, empty, nosup]))
    assert dropped == 3
    assert [c.id for c in kept] == ["good"]
    assert "3" in caplog.text and "blank" in caplog.text and "nosup" in caplog.text
    kept, dropped = reject_empty_captions(CutSet.from_cuts([good]))
    assert dropped == 0 and len(kept) == 1


def test_reject_empty_captions_checks_raw_whitespace(wav):
    cut = _cut(wav, "raw", ["ok"])
    cut.supervisions[0].custom["caption"] = ["  ", "\t"]  # e.g. edited by hand after creation
    kept, dropped = reject_empty_captions([cut])
    assert dropped == 1 and len(kept) == 0


def test_label_tasks(wav):
    cuts = CutSet.from_cuts(
        [
            _cut(wav, "s", ["x"], "speech", {"speech_rate": "fast", "speech_gender": "male"}),
            _cut(wav, "e", ["x"], "sound", {"sound_event": "siren"}),
            _cut(wav, "m", ["x"], "mix"),
        ]
    )
    assert label_tasks(cuts) == ["sound_event", "speech_gender", "speech_rate"]
    assert label_tasks([]) == []


def test_cut_captions_falls_back_to_text(wav):
    cut = _cut(wav, "t", ["first caption"])
    del cut.supervisions[0].custom["caption"]
    assert cut_captions(cut) == ["first caption"]
