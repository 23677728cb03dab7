"""The bad-input battery (test/battery.py) through the folder recipe and the listing recipe,
stages 0-5 (prepare with audio checks, validate, stats, tokenizer, one training step,
evaluation), then embedding extraction: no crash, every good clip kept (exactly), every bad file
and row in a skipped list with its reason, file and (listing) line, a summary line per stage."""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from battery import make_battery
from test_folder_recipe import TINY, _recipe_copy, _run

pytestmark = pytest.mark.slow  # recipes / subprocesses: run by .ci/run (pytest -m slow)

ROOT = Path(__file__).resolve().parents[2]
TRAIN_ARGS = " ".join([a for a in TINY if not a.startswith(("train.max_steps", "train.save"))]
                      + ["train.max_steps=1", "train.save_every=1"])  # fmt: skip
PROBE_ONLY = "eval: {baselines: [], evaluators: [{name: probe, steps: 20}]}\n"
STAGE_SUMMARIES = (
    "[stage 0]", "cuts, ", "[stage 1]", "[stage 2]", "[stage 3]", "[stage 4]", "[stage 5]",
)  # fmt: skip


def manifests(folder: Path) -> dict[str, list[dict]]:
    out = {}
    for split in ("train", "dev", "test"):
        path = next((folder / "data" / "manifests").glob(f"*_cuts_{split}.jsonl.gz"), None)
        with gzip.open(path, "rt") as f:
            out[split] = [json.loads(x) for x in f if x.strip()]
    return out


def skipped(folder: Path) -> list[tuple[str, str, str]]:
    rows = []
    for tsv in sorted((folder / "data" / "manifests").glob("*.skipped.tsv")):
        for line in tsv.read_text().splitlines()[1:]:
            cid, reason, detail = line.split("\t", 2)
            rows.append((cid, reason, detail))
    return rows


def kept_files(folder: Path, base: Path) -> set[str]:
    """Tree-relative paths of the audio files behind the kept cuts (all splits)."""
    out = set()
    for cuts in manifests(folder).values():
        for c in cuts:
            src = Path(c["recording"]["sources"][0]["source"]).resolve()
            out.add(src.relative_to(base.resolve()).as_posix())
    return out


@pytest.fixture(scope="module")
def battery(tmp_path_factory):
    base = tmp_path_factory.mktemp("battery")
    b = make_battery(base / "corpus")
    (base / "probe_only.yaml").write_text(PROBE_ONLY)
    return b, base


def run_recipe(base: Path, name: str, data_args: str):
    folder = _recipe_copy(base / name)
    res = _run(
        folder, "--stage", "0", "--stop-stage", "5", "--data-args", data_args,
        "--vocab-size", "30", "--train-args", TRAIN_ARGS,
        "--eval-config", str(base / "probe_only.yaml"), timeout=900,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    out = res.stdout + res.stderr
    for mark in STAGE_SUMMARIES:  # a summary line per stage
        assert mark in out, mark
    assert "done: 1 steps" in (folder / "exp" / "contrastive" / "train.log").read_text()
    md = (folder / "exp" / "contrastive" / "eval" / "results.md").read_text()
    assert "## Data" in md and "| probe (mean pool)" in md
    return folder, out


@pytest.fixture(scope="module")
def folder_run(battery) -> Path:
    """The battery through the folder recipe, stages 0-5 (its checks in run_recipe)."""
    b, base = battery
    return run_recipe(base, "folder_recipe", f"{b.tree} --check-audio true")[0]


@pytest.mark.timeout(1200)
def test_battery_through_the_folder_recipe(battery, folder_run):
    b, _ = battery
    folder = folder_run
    good = {p for split in b.good.values() for p in split}
    assert kept_files(folder, b.tree) == good  # every good clip kept, nothing else
    long_segments = [
        c for cuts in manifests(folder).values() for c in cuts
        if "ten_minutes" in c["recording"]["sources"][0]["source"]
    ]  # fmt: skip
    assert len(long_segments) == 60  # 600 s in 10 s segments
    rows = skipped(folder)
    got = {os.path.relpath(cid, b.tree): r for cid, r, _ in rows}
    assert got == b.bad, (got, b.bad)  # each bad file named, with its reason
    for cid, _, detail in rows:
        assert Path(cid).name in detail  # the detail names the file


@pytest.mark.timeout(1200)
def test_battery_through_the_listing_recipe(battery):
    b, base = battery
    folder, out = run_recipe(
        base, "listing_recipe", f"{b.listing} --task sound_label --check-audio true"
    )
    good = {f"tree/{p}" for split in b.good.values() for p in split}
    assert kept_files(folder, b.root) == good
    by_line = {}
    for cid, reason, detail in skipped(folder):
        line = re.search(r"listing\.csv:(\d+)", f"{cid} {detail}")
        assert line, (cid, detail)  # every listing row's skip names its line
        by_line[int(line.group(1))] = reason
    assert by_line == b.listing_bad, (by_line, b.listing_bad)  # reason and line of every row
    # hostile captions of good clips: cut to 512 words, control characters removed
    caps = {
        Path(c["recording"]["sources"][0]["source"]).name: c["supervisions"][0]["custom"]["caption"]
        for cuts in manifests(folder).values() for c in cuts
    }  # fmt: skip
    assert len(caps["dog_2.wav"][0].split()) == 512
    assert caps["dog_3.wav"][0] == "a dog barks loudly"
    assert caps["dog_4.wav"]  # a whitespace caption: the label captions instead


@pytest.mark.timeout(600)
def test_battery_extraction_skips_and_counts(battery, folder_run, tmp_path):
    b, _ = battery
    run = folder_run / "exp" / "contrastive"
    files = sorted(p for p in b.tree.rglob("*") if not p.is_dir())
    listing = tmp_path / "files.txt"
    listing.write_text("\n".join(map(str, files)) + "\n")
    cmd = [sys.executable, "-m", "toolkit.bin.extract", "--run-dir", str(run), "--list",
           str(listing), "--out", str(tmp_path / "emb"), "--skip-errors", "--no-progress"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    ids = (tmp_path / "emb" / "ids.txt").read_text().splitlines()
    readable_bad = {"train/dog/truncated.wav", "train/rain/click_10ms.wav"}  # decodable audio
    expected = {p for split in b.good.values() for p in split} | readable_bad
    assert {Path(i).relative_to(b.tree).as_posix() for i in ids} == expected
    assert f"{len(files) - len(expected)} unreadable" in r.stdout  # counted (and in meta.json)
