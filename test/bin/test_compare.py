"""toolkit.bin.compare: one table over several evaluated runs."""

from __future__ import annotations

import pytest

from toolkit.bin.compare import compare_rows, main, render
from toolkit.config import ConfigError
from toolkit.evaluate.report import write_results_csv


def _rows(model: str, music: float, speech: float, r1: float) -> list[dict]:
    lp = "linear probe (mean pool)"
    return [
        {"model": model, "group": lp, "task": "music_a", "metric": "acc", "value": music},
        {"model": model, "group": lp, "task": "music_b", "metric": "acc", "value": music + 10},
        {"model": model, "group": lp, "task": "speech_a", "metric": "acc", "value": speech},
        {"model": model, "group": "retrieval", "task": "audio→text", "metric": "R@1", "value": r1},
    ]


def _write(tmp_path, name: str, rows: list[dict]):
    d = tmp_path / name / "eval"
    d.mkdir(parents=True)
    write_results_csv([{**r, "chance": None} for r in rows], d / "results.csv")
    return tmp_path / name


def test_compare_table(tmp_path, capsys):
    a = _write(tmp_path, "a", _rows("pretrained", 50, 60, 10) + _rows("logmel_stats", 40, 70, 0))
    b = _write(tmp_path, "b", _rows("pretrained", 70, 80, 20) + _rows("logmel_stats", 40, 70, 0))
    out = tmp_path / "cmp.md"
    assert main([str(a), str(b), "--names", "A,B", "-o", str(out)]) == 0
    text = out.read_text()
    assert "| A | pretrained | 55.0 | 60.0 | 10.0 |" in text  # music mean of 50 and 60
    assert "| B | pretrained | 75.0 | 80.0 | 20.0 |" in text
    assert text.count("logmel_stats") == 1  # a shared baseline is shown once
    assert "sound" not in text.splitlines()[0]  # no sound tasks: column left out
    assert out.with_suffix(".csv").is_file()
    assert out.with_suffix(".png").stat().st_size > 1000
    assert "A" in capsys.readouterr().out


def test_compare_errors(tmp_path):
    with pytest.raises(ConfigError, match="results.csv not found"):
        main([str(tmp_path / "missing")])
    a = _write(tmp_path, "a", _rows("pretrained", 50, 60, 10))
    with pytest.raises(ConfigError, match="--names"):
        main([str(a), "--names", "x,y"])


def test_shared_baseline_collects_columns_from_every_run():
    cap = {"group": "captioning (own decoder)", "task": "test captions", "metric": "CIDEr-D"}
    probe = {**cap, "group": "captioning (probe decoder)"}
    run_a = [{**probe, "model": "most_frequent_caption", "value": 4.6}]
    run_b = [
        {**cap, "model": "most_frequent_caption", "value": 4.6},
        {**cap, "model": "pretrained", "value": 0.0},
    ]
    table = compare_rows([("a", run_a), ("b", run_b)])
    base = [r for r in table if r["model"] == "most_frequent_caption"]
    assert len(base) == 1
    assert base[0]["CIDEr-D (own decoder)"] == 4.6 and base[0]["CIDEr-D (probe decoder)"] == 4.6
    assert "CIDEr-D (own decoder)" in render(table)  # a column of zeros is still shown


def test_render_handles_missing_values():
    table = compare_rows([("r", _rows("pretrained", 1.0, 2.0, 3.0))])
    assert "CIDEr" not in render(table)
