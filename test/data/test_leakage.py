"""The one "same clip" rule shared by aggregation's leakage filter and evaluation's check."""

from __future__ import annotations

import pytest
from lhotse import MonoCut, SupervisionSegment

from toolkit.data.leakage import LeakageIndex, clip_ids, find_leaks


def _cut(cid: str, **custom) -> MonoCut:
    sup = SupervisionSegment(f"{cid}-s", cid, 0.0, 1.0, custom=custom)
    return MonoCut(cid, 0.0, 1.0, 0, supervisions=[sup])


def test_clip_ids_qualify_orig_id_by_source_and_split_youtube_keys():
    ids = clip_ids(_cut("ac_1", source="audiocaps", orig_id="91", audio_key="yt:ABCDEFGHIJK:30"))
    assert ids == {
        "cut_id": "ac_1",
        "audio_key": "yt:ABCDEFGHIJK:30",
        "ytid": "ABCDEFGHIJK",
        "orig_id": "audiocaps:91",
    }
    assert clip_ids(_cut("x", orig_id="7")) == {"cut_id": "x", "orig_id": "7"}


@pytest.mark.parametrize(
    "ref, cut, reason",
    [
        (_cut("a"), _cut("a"), "cut_id"),
        (_cut("a", audio_key="fs:1"), _cut("b", audio_key="fs:1"), "audio_key"),
        (_cut("a", audio_key="yt:V:0"), _cut("b", audio_key="yt:V:10"), "ytid"),
        (_cut("a", source="s", orig_id="1"), _cut("b", source="s", orig_id="1"), "orig_id"),
        (_cut("a", source="s", orig_id="1"), _cut("b", source="t", orig_id="1"), None),
    ],
)
def test_aggregation_and_evaluation_apply_the_same_rule(ref, cut, reason):
    index = LeakageIndex()
    index.add_cuts([ref], "ref")
    got = index.match(cut)
    assert (got[0] if got else None) == (f"eval:ref:{reason}" if reason else None)
    leaks = find_leaks([ref], {"test": [cut]})
    assert leaks == ({"test": [cut.id]} if reason else {})


def test_blacklist_matches_bare_orig_id_and_other_ids(tmp_path):
    bl = tmp_path / "bl.txt"
    bl.write_text("# comment\n91\nyt:Q:1  # a key\n")
    index = LeakageIndex()
    assert index.add_blacklist(bl) == 2
    assert index.match(_cut("a", source="s", orig_id="91")) == ("blacklist:orig_id", "91")
    assert index.match(_cut("b", audio_key="yt:Q:1")) == ("blacklist:audio_key", "yt:Q:1")
    assert index.match(_cut("c", source="s", orig_id="92")) is None


def test_unknown_match_field_is_refused():
    with pytest.raises(ValueError, match="unknown leakage match field"):
        LeakageIndex(["nope"])
