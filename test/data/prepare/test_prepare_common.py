"""Tests for the shared prepare machinery (parts, resume, skip-and-count) and the prepare CLI."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
import soundfile as sf
from lhotse import CutSet

from toolkit.bin.prepare import load_corpus_modules, main, prepare_all
from toolkit.config import ConfigError
from toolkit.data.cuts import caption_cut
from toolkit.data.prepare.common import (
    PrepareRun,
    SkipItem,
    find_audio,
    fn_signature,
    option_names,
    prepare_in_parts,
    read_recording,
    run_defaults,
    segment_times,
    takes_run,
)


def _item_fn(item: dict, fail_on: str | None = None):
    """Module-level (picklable) item function used by the tests."""
    if item["id"] == fail_on:
        raise RuntimeError("boom")
    rec = read_recording(item["path"], item["id"])
    return caption_cut(rec, item["id"], [item["caption"]], ["short"], "sound", "unit")


def _write(path, seconds: float, sr: int = 16000) -> None:
    sf.write(path, 0.1 * np.ones(int(seconds * sr)), sr)


@pytest.fixture
def items(tmp_path):
    out = []
    for i in range(7):
        path = tmp_path / f"a{i}.wav"
        if i != 3:  # a3 is missing
            _write(path, 0.5 + 0.1 * i)
        out.append({"id": f"a{i}", "path": str(path), "caption": f"clip {i}"})
    (tmp_path / "a5.wav").write_bytes(b"RIFF....not audio")  # corrupt
    _write(tmp_path / "a6.wav", 0.02)  # too short for min_duration=0.1
    return out


@pytest.mark.parametrize("num_jobs", [1, 2])
def test_parts_skip_and_resume(tmp_path, items, num_jobs):
    out = tmp_path / "out" / "unit_cuts_train.jsonl.gz"
    fn = functools.partial(_item_fn, fail_on="a4")
    s = prepare_in_parts(
        items, fn, out, item_id=lambda x: x["id"], num_jobs=num_jobs, part_size=2,
        min_duration=0.1,
    )  # fmt: skip
    ids = [c.id for c in CutSet.from_file(out)]
    assert ids == ["a0", "a1", "a2"]  # manifest order = item order across parts
    assert s.num_cuts == 3 and s.hours == pytest.approx((0.5 + 0.6 + 0.7) / 3600)
    assert dict(s.skipped) == {"missing": 1, "error": 1, "unreadable": 1, "too_short": 1}
    rows = s.skipped_file.read_text().splitlines()
    assert rows[0] == "id\treason\tdetail"
    reasons = {r.split("\t")[0]: r.split("\t")[1] for r in rows[1:]}
    assert reasons == {"a3": "missing", "a4": "error", "a5": "unreadable", "a6": "too_short"}
    assert "RuntimeError: boom" in s.skipped_file.read_text()
    assert len(list((out.parent / ".parts" / "unit_cuts_train").glob("*.done"))) == 4

    # a rerun reuses every finished part and the manifest (not rewritten)
    mtime = out.stat().st_mtime_ns
    s2 = prepare_in_parts(items, fn, out, item_id=lambda x: x["id"], part_size=2, min_duration=0.1)
    assert out.stat().st_mtime_ns == mtime and s2.num_cuts == 3
    assert dict(s2.skipped) == dict(s.skipped)


def test_killed_part_is_redone(tmp_path, items):
    out = tmp_path / "unit_cuts_train.jsonl.gz"
    kw = dict(item_id=lambda x: x["id"], part_size=2, min_duration=0.1)
    prepare_in_parts(items, _item_fn, out, **kw)
    parts = out.parent / ".parts" / "unit_cuts_train"
    # simulate a prepare killed before part 1 finished: its marker is missing
    (parts / "part-000001.done").unlink()
    before = {p.name: p.stat().st_mtime_ns for p in parts.glob("*.done")}
    s = prepare_in_parts(items, _item_fn, out, **kw)
    after = {p.name: p.stat().st_mtime_ns for p in parts.glob("*.done")}
    assert before == {k: v for k, v in after.items() if k in before}  # others reused
    assert "part-000001.done" in after and s.num_cuts == 4  # a4 no longer fails


def test_changed_items_redo_their_part(tmp_path, items):
    out = tmp_path / "unit_cuts_train.jsonl.gz"
    prepare_in_parts(items[:4], _item_fn, out, item_id=lambda x: x["id"], part_size=2)
    s = prepare_in_parts(items[:2] + items[4:5], _item_fn, out, item_id=lambda x: x["id"])
    assert [c.id for c in CutSet.from_file(out)] == ["a0", "a1", "a4"] and s.num_cuts == 3


def test_every_item_failing_is_an_error(tmp_path, items):
    with pytest.raises(RuntimeError, match="every item failed; first error: a0"):
        prepare_in_parts(
            items[:1], functools.partial(_item_fn, fail_on="a0"), tmp_path / "x_cuts_a.jsonl.gz",
            item_id=lambda x: x["id"],
        )  # fmt: skip


def test_segment_times():
    assert segment_times(25.0, 10.0) == [(0.0, 10.0), (10.0, 10.0), (20.0, 5.0)]
    assert segment_times(20.5, 10.0, min_duration=1.0) == [(0.0, 10.0), (10.0, 10.0)]
    assert segment_times(4.0, 10.0) == [(0.0, 4.0)]
    assert segment_times(0.5, 10.0, min_duration=1.0) == []
    assert segment_times(20.0, 10.0, hop=5.0) == [(0.0, 10.0), (5.0, 10.0), (10.0, 10.0)]
    with pytest.raises(ValueError):
        segment_times(10.0, 0.0)


def test_read_recording_and_find_audio(tmp_path):
    _write(tmp_path / "x.flac", 1.0, 44100)
    assert find_audio(tmp_path, "x") == tmp_path / "x.flac"
    assert find_audio(tmp_path, "y") is None
    rec = read_recording(tmp_path / "x.flac", "x")
    assert rec.sampling_rate == 44100 and rec.duration == pytest.approx(1.0)
    with pytest.raises(SkipItem) as e:
        read_recording(tmp_path / "none.wav", "n")
    assert e.value.reason == "missing"


def test_cli_lists_corpora_and_builds_options(capsys):
    assert {"demo", "folder", "listing"} <= set(load_corpus_modules())
    main(["list"])
    out = capsys.readouterr().out
    assert "folder" in out and "listing" in out
    with pytest.raises(SystemExit):
        main(["folder", "--help"])
    assert "--dev-fraction" in capsys.readouterr().out


def test_prepare_all_skips_corpora_without_path(tmp_path, caplog):
    corp = tmp_path / "corp" / "dog"
    corp.mkdir(parents=True)
    for i in range(3):
        _write(corp / f"d{i}.wav", 0.5)
    yaml_path = tmp_path / "corpora.yaml"
    yaml_path.write_text(
        "corpora:\n  folder: {corpus_dir: corp, test_fraction: 0.0, dev_fraction: 0.0}\n"
        "  listing: {corpus_dir: null}\n  demo: {corpus_dir: /nonexistent/demo}\n"
    )
    done = prepare_all(yaml_path, tmp_path / "m")
    assert done == ["folder"]
    assert len(CutSet.from_file(tmp_path / "m" / "folder_cuts_train.jsonl.gz")) == 3
    summary = json.loads((tmp_path / "m" / "folder_cuts_train.summary.json").read_text())
    assert summary["num_cuts"] == 3
    yaml_path.write_text("corpora:\n  foldr: {corpus_dir: corp}\n")
    with pytest.raises(ConfigError, match="corpora.foldr: unknown corpus; known: .*folder"):
        prepare_all(yaml_path, tmp_path / "m")
    yaml_path.write_text("corpora:\n  folder: {corpus_dir: corp, dev_fractoin: 0.1}\n")
    with pytest.raises(ConfigError, match="unknown option\\(s\\) dev_fractoin"):
        prepare_all(yaml_path, tmp_path / "m")


def test_every_corpus_takes_the_run_keywords(capsys):
    """Every registered corpus prepare takes ``**run`` (the demo generator, with its own
    ``num_jobs`` and ``force``, aside; it is registered although a sub-package); the CLI offers
    --num-jobs/--force/--part-size with the defaults of prepare_in_parts."""
    assert run_defaults() == {"num_jobs": 1, "force": False, "part_size": 2000}
    corpora = load_corpus_modules()
    assert len(corpora) >= 20
    assert [n for n, fn in corpora.items() if not takes_run(fn)] == ["demo"]
    for name, fn in corpora.items():
        names = option_names(fn)
        assert names[:2] == ["corpus_dir", "output_dir"]
        assert {"num_jobs", "force"} <= set(names), name
        assert set(PrepareRun.__annotations__) <= set(names) or name == "demo", name
    with pytest.raises(SystemExit):
        main(["esc50", "--help"])
    help_text = capsys.readouterr().out
    for flag in ("--num-jobs", "--force", "--part-size", "default: 2000"):
        assert flag in help_text


def test_run_keywords_reach_the_parts(tmp_path):
    """``part_size`` from a corpora YAML reaches prepare_in_parts (3 files, parts of 2 → 2
    parts); an unknown keyword is refused naming it."""
    corp = tmp_path / "corp" / "dog"
    corp.mkdir(parents=True)
    for i in range(3):
        _write(corp / f"d{i}.wav", 0.5)
    yaml_path = tmp_path / "corpora.yaml"
    opts = "corpus_dir: corp, test_fraction: 0.0, dev_fraction: 0.0"
    yaml_path.write_text(f"corpora:\n  folder: {{{opts}, part_size: 2}}\n")
    assert prepare_all(yaml_path, tmp_path / "m") == ["folder"]
    parts = sorted((tmp_path / "m" / ".parts" / "folder_cuts_train").glob("part-*.done"))
    assert len(parts) == 2, parts
    yaml_path.write_text(f"corpora:\n  folder: {{{opts}, part_sise: 2}}\n")
    with pytest.raises(ConfigError, match="unknown option\\(s\\) part_sise; known: .*part_size"):
        prepare_all(yaml_path, tmp_path / "m")


def test_changed_options_redo_parts(tmp_path, items):
    out = tmp_path / "unit_cuts_train.jsonl.gz"
    kw = dict(item_id=lambda x: x["id"], part_size=3)
    s1 = prepare_in_parts(items, functools.partial(_item_fn, fail_on="a0"), out, **kw)
    s2 = prepare_in_parts(items, functools.partial(_item_fn, fail_on="a1"), out, **kw)
    assert s1.skipped["error"] == s2.skipped["error"] == 1
    ids = [c.id for c in CutSet.from_file(out)]
    assert "a0" in ids and "a1" not in ids  # the option change was not served from stale parts
    s3 = prepare_in_parts(
        items, functools.partial(_item_fn, fail_on="a1"), out, min_duration=0.1, **kw
    )
    assert s3.skipped["too_short"] == 1


def test_fn_signature_is_stable():
    a = fn_signature(functools.partial(_item_fn, fail_on="x"))
    assert a == fn_signature(functools.partial(_item_fn, fail_on="x"))
    assert a != fn_signature(functools.partial(_item_fn, fail_on="y"))
    assert "0x" not in a and a.endswith("(; fail_on='x')")
