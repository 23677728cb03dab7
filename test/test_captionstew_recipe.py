"""egs/captionstew/run.sh stages 0–1 on the fixtures of every corpus (real layouts, tiny audio)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from corpus_fixtures.write_all import SOURCES, write_all
from lhotse import CutSet

from toolkit.data.cuts import cut_custom

ROOT = Path(__file__).resolve().parents[1]


def test_captionstew_stages_0_1_on_fixtures(tmp_path):
    corpora = write_all(tmp_path / "fixtures")
    data = tmp_path / "data"
    env = {**os.environ, "PYTHON": sys.executable}
    cmd = ["bash", str(ROOT / "egs/captionstew/run.sh"), "--corpora", str(corpora),
           "--data", str(data), "--stage", "0", "--stop-stage", "1", "--nj", "1"]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    # every corpus prepared, sources aggregated, statistics printed
    for name in SOURCES:
        assert (data / "manifests" / f"{name}_cuts_train.jsonl.gz").is_file(), name
    assert (data / "manifests" / "esc50_cuts_fold1.jsonl.gz").is_file()
    assert "| source | audiocaps |" in res.stdout and "| total | total |" in res.stdout
    train = list(CutSet.from_file(data / "cuts_train.jsonl.gz"))
    sources = {s for c in train for s in cut_custom(c)["caption_source"]}
    assert sources <= set(SOURCES) and len(sources) >= 5
    subsets = [len(CutSet.from_file(data / "aggregate" / f"cuts_train_{f}.jsonl.gz"))
               for f in ("0.04", "0.1", "0.4", "1.0")]  # fmt: skip
    assert subsets == sorted(subsets) and subsets[-1] == len(train)
    # the AudioCaps train clip that is also in the strongly labelled test set is filtered out
    assert not any(cut_custom(c).get("audio_key") == "yt:--0w1YA1Hm4:30" for c in train)
    # a rerun of stage 0 reuses every manifest
    res2 = subprocess.run(cmd[:-6] + ["--stage", "0", "--stop-stage", "0", "--nj", "1"],
                          capture_output=True, text=True, env=env, timeout=600)  # fmt: skip
    assert res2.returncode == 0
    assert "(reused)" in res2.stderr and "reused" in res2.stderr
