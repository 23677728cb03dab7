"""Tests for the strong-label SED prepare module (DESED TSV format) on a tiny fake set."""

from __future__ import annotations

import prepare_checks as checks
import pytest
from corpus_fixtures import sed_strong as fx

from toolkit.data.cuts import cut_custom, cut_labels
from toolkit.data.dataset import load_mono
from toolkit.data.prepare.sed_strong import events_path, prepare_sed_strong, youtube_audio_key

prepared = checks.prepared_fixture(fx, prepare_sed_strong, "sed_strong")


def test_cuts_and_clip_labels(prepared):
    _, _, cuts = prepared
    assert set(cuts) == {"test"}
    got = {cut_custom(c)["orig_id"]: c for c in cuts["test"]}
    assert list(got) == [fx.A, fx.B, fx.C, fx.D]  # TSV first-seen order
    for fname, cut in got.items():
        assert cut.id == "sed_strong_" + fname[:-4]
        assert cut.duration == pytest.approx(fx.SECONDS) and cut.start == 0
        assert cut.sampling_rate == fx.SR and len(cut.supervisions) == 1
        checks.assert_label_only_cut(cut, "sed_strong", "sound", split="test")
        expected = sorted({e[2] for e in fx.EXPECTED_EVENTS[fname]})
        assert cut_labels(cut) == {"sound_events": expected}
    assert cut_custom(got[fx.A])["audio_key"] == "yt:--0w1YA1Hm4:30"
    assert cut_custom(got[fx.B])["audio_key"] == "yt:0AZ9XYzFXgQ:10"
    assert "audio_key" not in cut_custom(got[fx.D])


def test_events_sidecar(prepared):
    _, out, cuts = prepared
    lines = events_path(out, "sed_strong", "test").read_text().splitlines()
    assert lines[0] == "cut_id\tonset\toffset\tevent_label"
    rows: dict[str, list] = {}
    for line in lines[1:]:
        cid, on, off, label = line.split("\t")
        rows.setdefault(cid, []).append((float(on), float(off), label))
    by_id = {c.id: cut_custom(c)["orig_id"] for c in cuts["test"]}
    assert set(rows) <= set(by_id)
    for cid, fname in by_id.items():
        assert sorted(rows.get(cid, [])) == sorted(fx.EXPECTED_EVENTS[fname])
    for cid, events in rows.items():  # cut-relative and inside the cut
        cut = next(c for c in cuts["test"] if c.id == cid)
        assert all(0 <= on < off <= cut.duration + 1e-6 for on, off, _ in events)


def test_skipped(prepared):
    assert prepared.summary("test")["skipped"] == {"missing": 1, "unreadable": 1, "bad_metadata": 1}
    assert prepared.skipped("test") == {
        fx.MISSING: "missing",
        fx.CORRUPT: "unreadable",
        fx.BAD_ROW: "bad_metadata",
    }


def test_load_audio_and_rerun(prepared):
    corpus, out, cuts = prepared
    cut = cuts["test"][0]
    assert load_mono(cut, 16000).shape[0] == pytest.approx(fx.SECONDS * 16000, abs=1)
    checks.assert_rerun_gives_same_cuts(prepared, "test", lambda: prepare_sed_strong(corpus, out))


def test_options(prepared, tmp_path):
    corpus, _, _ = prepared
    cuts = prepare_sed_strong(
        corpus, tmp_path, split="validation", name="desed", readable_labels=False
    )
    assert set(cuts) == {"dev"}
    assert (tmp_path / "desed_cuts_dev.jsonl.gz").is_file()
    assert events_path(tmp_path, "desed", "dev").is_file()
    cut = next(c for c in cuts["dev"] if cut_custom(c)["orig_id"] == fx.B)
    assert cut_labels(cut) == {"sound_events": ["Alarm_bell_ringing"]}
    assert cut_custom(cut)["source"] == "desed" and cut_custom(cut)["split"] == "dev"
    with pytest.raises(ValueError, match="unknown split"):
        prepare_sed_strong(corpus, tmp_path, split="holdin")
    with pytest.raises(FileNotFoundError, match="nope.tsv"):
        prepare_sed_strong(corpus, tmp_path, tsv="nope.tsv")


def test_youtube_audio_key():
    assert youtube_audio_key("Y--0w1YA1Hm4_30.000_40.000.wav") == "yt:--0w1YA1Hm4:30"
    assert youtube_audio_key("audio/Yabcdefghijk_7.5_17.5.wav") == "yt:abcdefghijk:7"
    assert youtube_audio_key("1234.wav") is None


def test_cli_lists_options(capsys):
    options = ("--tsv", "--audio-dir", "--split", "--name", "--readable-labels")
    checks.assert_cli_help_lists(capsys, "sed_strong", *options)
