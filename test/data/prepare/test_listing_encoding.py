"""The ``listing`` prepare recipe on a listing with bad rows: a row that is not UTF-8 (a Latin-1
caption), a row with the wrong number of columns, a bad JSONL line, a UTF-8 BOM. Bad rows are
skipped and listed (reason, file and line) in the split's skipped list; every good row is kept."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from lhotse import CutSet

from toolkit.bin.prepare import main
from toolkit.data.cuts import cut_captions
from toolkit.data.prepare.generic import iter_listing

ROOT = Path(__file__).resolve().parents[3]
BOM = b"\xef\xbb\xbf"
CAFE_LATIN1 = "un café bruyant".encode("latin-1")  # b"caf\xe9": not valid UTF-8


def _corpus(tmp_path: Path, n: int = 5) -> Path:
    root = tmp_path / "corp"
    (root / "audio").mkdir(parents=True)
    for i in range(n):
        sf.write(root / "audio" / f"c{i}.wav", 0.1 * np.ones(8000), 16000)
    return root


def _skipped(out: Path, name: str, split: str = "train") -> list[list[str]]:
    rows = (out / f"{name}_cuts_{split}.skipped.tsv").read_text().splitlines()
    assert rows[0] == "id\treason\tdetail"
    return [r.split("\t") for r in rows[1:]]


def _prepare(root: Path, out: Path, listing: str, name: str) -> None:
    main(["listing", "--corpus-dir", str(root), "--output-dir", str(out), "--listing", listing,
          "--name", name, "--dev-fraction", "0", "--test-fraction", "0"])  # fmt: skip


@pytest.mark.parametrize("sep,ext", [(b",", "csv"), (b"\t", "tsv")])
def test_csv_tsv_bad_encoding_and_column_count_are_skipped(tmp_path, sep, ext):
    root = _corpus(tmp_path)
    lines = [
        BOM + sep.join([b"path", b"caption"]),  # line 1: header after a UTF-8 BOM
        sep.join([b"audio/c0.wav", "a dog barks, café".encode() if ext == "tsv" else b"a dog"]),
        sep.join([b"audio/c1.wav", CAFE_LATIN1]),  # line 3: Latin-1
        sep.join([b"audio/c2.wav", "un café calme".encode()]),  # UTF-8 é: fine
        sep.join([b"audio/c3.wav", b"rain", b"extra"]),  # line 5: 3 fields, header has 2
        b"",  # a blank line is no row
        sep.join([b"audio/c4.wav", b"wind"]),
    ]
    (root / f"list.{ext}").write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / "m"
    _prepare(root, out, f"list.{ext}", "lst")
    cuts = list(CutSet.from_file(out / "lst_cuts_train.jsonl.gz"))
    assert sorted(c.id for c in cuts) == ["lst_c0", "lst_c2", "lst_c4"]
    assert cut_captions(next(c for c in cuts if c.id == "lst_c2")) == ["un café calme"]
    listing = root / f"list.{ext}"
    assert _skipped(out, "lst") == [
        [f"{listing}:3", "bad_encoding", "not valid UTF-8: byte 0xe9 at column 20"],
        [f"{listing}:5", "bad_columns", "3 fields, the header has 2"],
    ]
    summary = json.loads((out / "lst_cuts_train.summary.json").read_text())
    assert summary["num_cuts"] == 3
    assert summary["skipped"] == {"bad_encoding": 1, "bad_columns": 1}


def test_jsonl_bad_encoding_and_bad_json_are_skipped(tmp_path):
    root = _corpus(tmp_path)
    good = [
        json.dumps({"path": f"audio/c{i}.wav", "caption": f"clip {i}"}).encode() for i in (0, 2)
    ]
    lines = [
        BOM + good[0],
        b'{"path": "audio/c1.wav", "caption": "' + CAFE_LATIN1 + b'"}',  # line 2: Latin-1
        good[1],
        b'{"path": "audio/c3.wav", "caption": ',  # line 4: truncated JSON
        b'["audio/c4.wav"]',  # line 5: not an object
        b'{"caption": "no path"}',  # line 6: no path
    ]
    (root / "list.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / "m"
    _prepare(root, out, "list.jsonl", "js")
    cuts = list(CutSet.from_file(out / "js_cuts_train.jsonl.gz"))
    assert sorted(c.id for c in cuts) == ["js_c0", "js_c2"]
    got = {(r[0].rsplit(":", 1)[1], r[1]) for r in _skipped(out, "js")}
    assert got == {("2", "bad_encoding"), ("4", "bad_json"), ("5", "bad_json"),
                   ("6", "bad_metadata")}  # fmt: skip


def test_bad_row_goes_to_its_own_split_or_an_existing_one(tmp_path):
    root = _corpus(tmp_path)
    lines = [
        b"path,caption,split",
        b"audio/c0.wav,one,train",
        b"audio/c1.wav," + CAFE_LATIN1 + b",test",  # bad row of the test split
        b"audio/c2.wav,two,test",
        b"audio/c3.wav," + CAFE_LATIN1 + b",dev",  # no good dev row: reported under train
    ]
    (root / "l.csv").write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / "m"
    main(["listing", "--corpus-dir", str(root), "--output-dir", str(out), "--listing", "l.csv"])
    assert not (out / "listing_cuts_dev.jsonl.gz").exists()  # no split of skipped rows only
    assert [r[:2] for r in _skipped(out, "listing", "test")] == [
        [f"{root}/l.csv:3", "bad_encoding"]
    ]
    assert [r[:2] for r in _skipped(out, "listing", "train")] == [
        [f"{root}/l.csv:5", "bad_encoding"]
    ]


def test_quoted_multiline_field_line_numbers(tmp_path):
    p = tmp_path / "l.csv"
    p.write_bytes(b'path,caption\na.wav,"two\nlines"\nb.wav,' + CAFE_LATIN1 + b"\nc.wav,ok\n")
    got = [(n, row["path"], problem and problem.reason) for n, row, problem in iter_listing(p)]
    assert got == [(2, "a.wav", None), (4, "b.wav", "bad_encoding"), (5, "c.wav", None)]


def test_header_not_utf8_or_without_path_is_an_error(tmp_path):
    p = tmp_path / "l.csv"
    p.write_bytes("path,légende\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"l\.csv:1: the header is not valid UTF-8"):
        list(iter_listing(p, required=("path",)))
    p.write_text("file,caption\na.wav,x\n")
    with pytest.raises(ValueError, match=r"l\.csv:1: no 'path' column; columns: file, caption"):
        list(iter_listing(p, required=("path",)))


def test_cli_does_not_abort_on_latin1_row(tmp_path):
    root = _corpus(tmp_path, 2)
    (root / "l.csv").write_bytes(b"path,caption\naudio/c0.wav,ok\naudio/c1.wav," + CAFE_LATIN1)
    out = tmp_path / "m"
    r = subprocess.run(
        [sys.executable, "-m", "toolkit.bin.prepare", "listing", "--corpus-dir", str(root),
         "--output-dir", str(out), "--listing", "l.csv", "--dev-fraction", "0",
         "--test-fraction", "0"],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    assert "UnicodeDecodeError" not in r.stderr
    assert "bad_encoding 1" in r.stderr
    assert len(list(CutSet.from_file(out / "listing_cuts_train.jsonl.gz"))) == 1


def test_bad_audio_files_are_skipped_by_reason(tmp_path):
    """Missing, zero-byte, header-only, garbage and text-as-audio files of a listing."""
    root = _corpus(tmp_path, 1)
    audio = root / "audio"
    (audio / "zero.wav").write_bytes(b"")
    sf.write(audio / "header.wav", np.zeros(0, np.float32), 16000)  # a header, no samples
    (audio / "garbage.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEgarbage" * 8)
    (audio / "text.flac").write_text("this is a text file, not audio\n" * 20)
    names = ["c0.wav", "missing.wav", "zero.wav", "header.wav", "garbage.wav", "text.flac"]
    (root / "l.csv").write_text("path,caption\n" + "".join(f"audio/{n},x\n" for n in names))
    out = tmp_path / "m"
    _prepare(root, out, "l.csv", "bad")
    assert [c.id for c in CutSet.from_file(out / "bad_cuts_train.jsonl.gz")] == ["bad_c0"]
    reasons = {Path(r[0]).name: r[1] for r in _skipped(out, "bad")}
    assert reasons == {"missing.wav": "missing", "zero.wav": "unreadable", "header.wav": "empty",
                       "garbage.wav": "unreadable", "text.flac": "unreadable"}  # fmt: skip
