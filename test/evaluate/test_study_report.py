"""Tests for the study report (toolkit.evaluate.study, toolkit.bin.report) on fixture runs."""

from __future__ import annotations

import csv

import pytest

from toolkit.bin.report import main
from toolkit.config import ConfigError
from toolkit.evaluate.report import write_results_csv
from toolkit.evaluate.study import Cell, family_of, family_table, load_study, render_study


def _run(root, name, objective, fraction, init, seed, music, speech, r1, source_set="all"):
    rows = []
    base = {"tag_objective": objective, "tag_fraction": fraction, "tag_init": init,
            "tag_source_set": source_set, "seed": seed, "checkpoint": "x", "config_hash": "h"}  # fmt: skip
    for task, v in (("music_genre", music), ("music_mode", music + 2), ("speech_rate", speech)):
        rows.append({"model": "pretrained", "group": "linear probe (mean pool)", "task": task,
                     "metric": "acc", "value": v, "chance": 10.0, **base})  # fmt: skip
    rows.append({"model": "pretrained", "group": "retrieval", "task": "audio→text",
                 "metric": "R@1", "value": r1, "chance": 1.0, **base})  # fmt: skip
    rows.append({"model": "pretrained", "group": "retrieval", "task": "audio→text",
                 "metric": "R@5", "value": 3 * r1, "chance": None, **base})  # fmt: skip
    rows.append({"model": "random_init", "group": "linear probe (mean pool)",
                 "task": "music_genre", "metric": "acc", "value": 5.0, "chance": 10.0, **base})  # fmt: skip
    run = root / name
    (run / "eval").mkdir(parents=True)
    write_results_csv(rows, run / "eval" / "results.csv")
    return run


@pytest.fixture
def study(tmp_path):
    runs = []
    for obj, bonus in (("contrastive", 0.0), ("captioning", 5.0)):
        for frac in ("0.1", "1.0"):
            for init, gain in (("scratch", 0.0), ("supervised", 3.0)):
                for seed, jitter in ((0, -1.0), (1, 1.0)):
                    music = 50 + bonus + gain + (10 if frac == "1.0" else 0) + jitter
                    runs.append(_run(tmp_path, f"{obj}_{frac}_{init}_{seed}", obj, frac, init,
                                     seed, music, 70.0 + jitter, 10.0 + bonus))  # fmt: skip
    runs.append(_run(tmp_path, "abl", "contrastive", "1.0", "scratch", 0, 40.0, 60.0, 2.0,
                     source_set="only:demo"))  # fmt: skip
    (tmp_path / "unfinished").mkdir()
    return tmp_path, runs + [tmp_path / "unfinished"]


def test_family_of():
    assert family_of({"group": "linear probe (mean pool)", "task": "music_x", "metric": "acc"}) == (
        "linear probe (mean pool) · music"
    )
    assert family_of({"group": "probe (attention pool)", "task": "sound_tags", "metric": "mAP"})
    assert family_of({"group": "retrieval", "task": "audio→text", "metric": "R@5"}) is None
    assert family_of({"group": "captioning", "task": "test", "metric": "CIDEr-D"})


def test_family_table_means_and_seeds(study):
    _, runs = study
    rows = load_study(runs)
    assert all(r["model"] == "pretrained" for r in rows)
    fam = family_table(rows)
    # music family = mean(music, music + 2) per run, then mean/std over the two seeds
    mean, std, n = fam[
        (Cell("captioning", 1.0, "supervised", "all"), "linear probe (mean pool) · music")
    ]
    assert n == 2 and mean == pytest.approx(50 + 5 + 3 + 10 + 1) and std == pytest.approx(2**0.5)
    assert fam[(Cell("contrastive", 0.1, "scratch", "all"), "retrieval audio→text R@1")][0] == 10.0


def test_render_and_cli(study, tmp_path):
    root, runs = study
    md, csv_rows = render_study(load_study(runs))
    assert "## 3. Gain from supervised initialisation" in md
    assert "## 4. Caption-source ablation" in md and "only:demo" in md
    gain_line = next(
        line for line in md.splitlines()
        if line.startswith("| linear probe (mean pool) · music | contrastive |") and "+" in line
    )  # fmt: skip
    assert gain_line.count("+3.0") == 2  # both fractions
    assert "69.0 ± 1.4" in md  # captioning, supervised, f=1.0, music
    gains = [r for r in csv_rows if r["init"] == "gain"]
    assert gains and all(r["mean"] == pytest.approx(3.0) for r in gains if "music" in r["family"])
    out = tmp_path / "report"
    main(["--runs", *map(str, runs), "--out-dir", str(out)])
    assert (out / "plot_scaling.png").stat().st_size > 1000
    assert (out / "plot_init_gain.png").stat().st_size > 1000
    with open(out / "study.csv") as f:
        assert len(list(csv.DictReader(f))) == len(csv_rows)
    with pytest.raises(ConfigError, match="no eval/results.csv"):
        main(["--runs", str(tmp_path / "unfinished"), "--out-dir", str(out)])
