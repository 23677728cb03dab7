"""bench/clip_loading.py: a tiny run writes the table and one JSON row per (format, Shar audio)."""

from __future__ import annotations

import json

import pytest
from fixtures import run_bench

pytestmark = pytest.mark.slow  # recipes / subprocesses: run by .ci/run (pytest -m slow)


def test_clip_loading_bench_tiny(tmp_path):
    out = tmp_path / "rows.json"
    args = ["--work-dir", str(tmp_path / "w"), "--clips", "2", "--formats", "48000x2x2"]
    args += ["--crop", "1", "--repeats", "1", "--json", str(out)]
    proc = run_bench("clip_loading.py", *args)
    rows = json.loads(out.read_text())["rows"]
    assert [r["shar_audio"] for r in rows] == ["original", "16 kHz mono"]
    assert all(r["source"] == "48 kHz, 2 ch, 2 s" and r["ms_per_clip"] > 0 for r in rows)
    assert "| 48 kHz, 2 ch, 2 s | 16 kHz mono |" in proc.stdout
    # the second Shar really holds 16 kHz mono audio
    from lhotse import CutSet

    cut = next(iter(CutSet.from_shar(in_dir=tmp_path / "w" / "48000_2ch_2s" / "shar_16k")))
    assert cut.sampling_rate == 16000 and cut.num_channels == 1
