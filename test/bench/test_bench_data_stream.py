"""bench/data_stream.py --quick: both tables, positive numbers, every configuration saw every cut."""

from __future__ import annotations

import hashlib
import json

import pytest
from fixtures import run_bench
from lhotse import CutSet

pytestmark = pytest.mark.slow  # recipes / subprocesses: run by .ci/run (pytest -m slow)


def _digest(ids) -> str:
    return hashlib.sha1("\n".join(sorted(set(ids))).encode()).hexdigest()


def test_data_stream_bench_quick(tmp_path):
    out, work = tmp_path / "rows.json", tmp_path / "w"
    proc = run_bench("data_stream.py", "--quick", "--work-dir", str(work), "--json", str(out))
    report = json.loads(out.read_text())
    thr, mem, meta = report["throughput"], report["memory"], report["meta"]

    # throughput: one row per (source, workers), all positive, printed
    assert [(r["source"], r["workers"]) for r in thr] == [
        (s, w) for s in ("files", "shar") for w in (0, 1, 2)
    ]
    for r in thr:
        assert r["epoch_s"] > 0 and r["cuts_per_s"] > 0 and r["audio_s_per_s"] > 0
        assert r["batches"] > 0 and r["vs_baseline"] > 0
    assert thr[0]["vs_baseline"] == 1.0
    for label in ("flac files + JSONL manifest", "Shar, flac in tars (6 shards)"):
        for w in (0, 1, 2):
            assert f"| {label} | {w} |" in proc.stdout

    # every configuration delivered the same cuts: each cut of the corpus exactly once, checked
    # against the ids of the manifest and of the Shar as Lhotse reads them (not the bench's own)
    manifest_ids = [c.id for c in CutSet.from_file(work / "clips" / "cuts.jsonl.gz")]
    shar_ids = [c.id for c in CutSet.from_shar(in_dir=work / "clips" / "shar")]
    assert len(manifest_ids) == 48 and sorted(shar_ids) == sorted(manifest_ids)
    want = _digest(manifest_ids)
    assert meta["throughput"]["corpus_ids_sha1"] == want
    assert {r["ids_sha1"] for r in thr} == {want}
    assert all(r["cuts"] == 48 and r["duplicates"] == 0 and r["skipped"] == 0 for r in thr)
    assert all(r["all_cuts_once"] for r in thr) and "MISMATCH" not in proc.stdout

    # memory: each corpus with 0 and 2 workers, whole epochs, positive peaks and growth printed
    assert [(r["corpus_cuts"], r["workers"]) for r in mem] == [
        (500, 0),
        (4000, 0),
        (500, 2),
        (4000, 2),
    ]
    for r in mem:
        assert r["whole_epoch"] and r["cuts"] == r["corpus_cuts"]
        assert r["main_peak_mib"] > 0 and r["seconds"] > 0
        assert (r["worker_peak_mib"] > 0) == (r["workers"] > 0)
        assert r["main_growth_pct"] is not None
    assert "| 2 | largest worker | 4,000 | 4,000 (whole epoch) |" in proc.stdout
    assert "| 0 | main | 500 | 500 (whole epoch) |" in proc.stdout
    assert meta["wall_s"] > 0
