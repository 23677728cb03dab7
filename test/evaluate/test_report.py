import csv
import math

import pytest

from toolkit.evaluate.report import (
    domain_summary,
    read_results_csv,
    read_scalars_csv,
    write_report,
)

LP = "linear probe (mean pool)"


def _rows():
    rows = []
    values = {
        "base": {"speech_language": 80.0, "speech_emotion": 40.0, "music_genre": 55.0},
        "large": {"speech_language": 90.0, "speech_emotion": 30.0, "music_genre": 65.0},
    }
    chance = {"speech_language": 10.0, "speech_emotion": 25.0, "music_genre": 10.0}
    for model, per_task in values.items():
        for task, v in per_task.items():
            rows.append(
                {
                    "model": model,
                    "group": LP,
                    "task": task,
                    "metric": "acc",
                    "value": v,
                    "chance": chance[task],
                }
            )
        rows.append(
            {
                "model": model,
                "group": "retrieval",
                "task": "audio→text",
                "metric": "R@1",
                "value": 12.34 if model == "base" else 7.0,
                "chance": 0.1,
            }
        )
        rows.append(
            {
                "model": model,
                "group": "zero-shot",
                "task": "sound_event",
                "metric": "acc",
                "value": 33.3,
                "chance": None,
            }
        )
    return rows


def test_domain_summary():
    summary = domain_summary(_rows())
    assert summary == {
        ("base", "speech"): pytest.approx(60.0),
        ("base", "music"): pytest.approx(55.0),
        ("large", "speech"): pytest.approx(60.0),
        ("large", "music"): pytest.approx(65.0),
    }


def test_write_report(tmp_path):
    curves = {"loss": [(0, 5.0), (10, 3.0), (20, 2.5)], "lr": [(0, 0.0), (20, 1e-3)]}
    md = write_report(_rows(), tmp_path / "out", title="My results", loss_curves=curves)
    out = tmp_path / "out"
    for name in ("results.csv", "results.md", "plot_metrics.png", "plot_loss.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert (out / "results.md").read_text(encoding="utf-8") == md
    assert md.startswith("# My results")
    lines = md.splitlines()
    header = next(line for line in lines if line.startswith("| group"))
    assert header == "| group | task | metric | base | large | chance |"
    lang = next(line for line in lines if "speech_language" in line)
    assert lang == f"| {LP} | speech_language | acc | 80.0 | **90.0** | 10.0 |"
    ret = next(line for line in lines if "audio→text" in line)
    assert "**12.3**" in ret and "| 7.0 |" in ret
    zs = next(line for line in lines if "sound_event" in line)
    assert zs.endswith("| **33.3** | **33.3** | - |")  # tie: both bold, no chance
    # per-domain summary
    assert "Per-domain" in md
    speech = next(line for line in lines if line.startswith("| speech |"))
    assert speech == "| speech | 2 | **60.0** | **60.0** |"
    music = next(line for line in lines if line.startswith("| music |"))
    assert music == "| music | 1 | 55.0 | **65.0** |"


def test_no_loss_plot_without_curves(tmp_path):
    write_report(_rows(), tmp_path)
    assert not (tmp_path / "plot_loss.png").exists()
    assert (tmp_path / "plot_metrics.png").exists()


def test_csv_round_trip(tmp_path):
    rows = _rows()
    write_report(rows, tmp_path)
    with open(tmp_path / "results.csv", newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == ["model", "group", "task", "metric", "value", "chance"]
        assert len(list(reader)) == len(rows)
    assert read_results_csv(tmp_path / "results.csv") == rows


def test_read_scalars_csv(tmp_path):
    path = tmp_path / "train_log.csv"
    path.write_text(
        "step,name,value\n0,loss,5.5\n0,lr,0.0\n100,loss,3.25\n100,lr,1e-4\n200,loss,nan\n"
        "300,loss,\n",
        encoding="utf-8",
    )
    curves = read_scalars_csv(path)
    assert list(curves) == ["loss", "lr"]
    assert curves["lr"] == [(0, 0.0), (100, 1e-4)]
    assert curves["loss"][:2] == [(0, 5.5), (100, 3.25)]
    assert curves["loss"][2][0] == 200 and math.isnan(curves["loss"][2][1])
    assert len(curves["loss"]) == 3  # empty value skipped


def test_rank_metrics_bold_the_smallest():
    from toolkit.evaluate.report import render_markdown

    rows = [
        {"model": m, "group": "retrieval", "task": "audio→text", "metric": met, "value": v}
        for m, met, v in (
            ("a", "medR", 3.0),
            ("b", "medR", 7.0),
            ("a", "R@1", 10.0),
            ("b", "R@1", 20.0),
        )
    ]
    md = render_markdown(rows)
    assert "| retrieval | audio→text | medR | **3.0** | 7.0 |" in md
    assert "| retrieval | audio→text | R@1 | 10.0 | **20.0** |" in md


def _nm_rows():
    note = "captions made from the labels"
    rows = []
    for model, r1, acc in (("pretrained", 0.0, 70.0), ("random_init", 5.0, 50.0)):
        rows.append({"model": model, "group": "retrieval", "task": "audio→text", "metric": "R@1",
                     "value": r1, "chance": 11.1, "not_meaningful": note})  # fmt: skip
        rows.append({"model": model, "group": LP, "task": "sound_class", "metric": "acc",
                     "value": acc, "chance": 33.3})  # fmt: skip
    return rows


def test_not_meaningful_rows_are_never_bold(tmp_path):
    md = write_report(_nm_rows(), tmp_path, title="own data")
    line = next(x for x in md.splitlines() if x.startswith("| retrieval"))
    assert line == "| retrieval | audio→text | R@1 | n/m | n/m | 11.1 |"
    assert "n/m: not meaningful: captions made from the labels" in md
    assert "| **70.0** | 50.0 |" in md
    rows = read_results_csv(tmp_path / "results.csv")  # the values and the reason are kept
    assert rows[0]["value"] == 0.0 and rows[0]["not_meaningful"] == "captions made from the labels"


def test_data_section_counts_clips_and_skipped(tmp_path):
    from toolkit.evaluate.report import data_counts

    data = tmp_path / "data"
    (data / "manifests").mkdir(parents=True)
    (data / "manifests" / "folder_cuts_train.skipped.tsv").write_text(
        "id\treason\tdetail\na.wav\ttoo_short\t0.05 s\nb.wav\tunreadable\tjunk\n"
    )
    (data / "stats.json").write_text('{"train": {"dropped": {"no_caption": 1}}}')
    counts = data_counts(
        {"train": 10, "test": 4},
        {"train": [data / "cuts_train.jsonl.gz"], "test": [data / "cuts_test.jsonl.gz"]},
        unreadable={"test": 1},
    )
    assert counts["train"]["skipped"] == {"too_short": 1, "unreadable": 1, "no_caption": 1}
    assert counts["test"]["skipped"] == {"unreadable_at_eval": 1}
    md = write_report(_nm_rows(), tmp_path / "ev", split_counts=counts)
    assert md.index("## Data") < md.index("| group |")
    assert "| train | 10 | 3 (no_caption 1, too_short 1, unreadable 1) |" in md
    assert "| test | 4 | 1 (unreadable_at_eval 1) |" in md
    assert (tmp_path / "ev" / "data.json").is_file()
