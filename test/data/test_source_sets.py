"""Caption-source sets for ablations (toolkit.data.source_sets)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from lhotse import CutSet

from toolkit.data.cuts import cut_custom, make_caption_cut
from toolkit.data.source_sets import apply_source_set, parse_spec, write_source_set


@pytest.fixture
def cuts(tmp_path):
    path = tmp_path / "a.wav"
    sf.write(path, np.zeros(1600), 16000)
    merged = make_caption_cut(path, "m", ["a dog", "dog barking", "a voice"],
                              ["short", "tags", "speaking_style"], "sound", "audiocaps",
                              metadata={"caption_source": ["audiocaps", "wavcaps", "paraspeechcaps"]})  # fmt: skip
    single = make_caption_cut(path, "s", ["someone talks"], ["speaking_style"], "speech",
                              "paraspeechcaps")  # fmt: skip
    return [merged, single]


def test_parse_spec():
    assert parse_spec("all") == ("all", set())
    assert parse_spec("only:a, b") == ("only", {"a", "b"})
    assert parse_spec("all-minus:x") == ("minus", {"x"})
    for bad in ("some:a", "only:", "only"):
        with pytest.raises(ValueError, match="expected 'all'"):
            parse_spec(bad)


def test_apply_source_set(cuts):
    assert [c.id for c in apply_source_set(cuts, "all")] == ["m", "s"]
    (m,) = apply_source_set(cuts, "all-minus:paraspeechcaps")
    custom = cut_custom(m)
    assert custom["caption"] == ["a dog", "dog barking"]
    assert custom["caption_style"] == ["short", "tags"]
    assert custom["caption_source"] == ["audiocaps", "wavcaps"]
    assert m.supervisions[0].text == "a dog"
    assert cut_custom(cuts[0])["caption"] == ["a dog", "dog barking", "a voice"]  # input untouched
    only = list(apply_source_set(cuts, "only:paraspeechcaps"))
    assert [cut_custom(c)["caption"] for c in only] == [["a voice"], ["someone talks"]]


def test_write_source_set(cuts, tmp_path):
    src = tmp_path / "in.jsonl.gz"
    CutSet.from_cuts(cuts).to_file(src)
    assert write_source_set(src, tmp_path / "out.jsonl.gz", "only:wavcaps") == (1, 2)
    with pytest.raises(ValueError, match="leaves no cut"):
        write_source_set(src, tmp_path / "none.jsonl.gz", "only:clotho")
