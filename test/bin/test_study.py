"""toolkit.bin.study (toolkit-study plan | run | report) and the grid model
(toolkit.evaluate.study_grid), with a fake cell command instead of pretrain.sh."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from lhotse import CutSet

from toolkit.bin.study import main
from toolkit.data.cuts import cut_custom, make_caption_cut
from toolkit.evaluate.report import write_results_csv
from toolkit.evaluate.study_grid import (
    StudyError,
    StudyOptions,
    expand,
    read_plan,
    run_name,
    run_status,
)

# the cell command: records its arguments, then writes what pretrain.sh stages 4-5 write
# (model.pt, eval/results.md); FAIL_CELL=<name> makes that cell fail
FAKE = """
import json, os, sys
from pathlib import Path
args = sys.argv[1:]
exp = Path(args[args.index("--exp-dir") + 1])
with open(os.environ["CALLS"], "a") as f:
    f.write(json.dumps(args) + "\\n")
print("fake pretrain.sh for", exp.name)
if os.environ.get("FAIL_CELL") == exp.name:
    print("boom", file=sys.stderr)
    sys.exit(3)
(exp / "eval").mkdir(parents=True, exist_ok=True)
(exp / "model.pt").write_text("m")
(exp / "eval" / "results.md").write_text("r")
"""


@pytest.fixture
def study(tmp_path, monkeypatch):
    """A recipe directory: two objective configs and the nested subsets 0.5 and 1.0."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "conf").mkdir()
    for obj in ("contrastive", "captioning"):
        (tmp_path / "conf" / f"pretrain_{obj}.yaml").write_text("{}\n")
    agg = tmp_path / "data" / "aggregate"
    agg.mkdir(parents=True)
    sf.write(tmp_path / "a.wav", np.zeros(1600), 16000)
    cut = make_caption_cut(tmp_path / "a.wav", "m", ["a dog", "a voice"], ["short", "short"],
                           "sound", "audiocaps",
                           metadata={"caption_source": ["audiocaps", "paraspeechcaps"]})  # fmt: skip
    for frac in ("0.5", "1.0"):
        CutSet.from_cuts([cut]).to_file(agg / f"cuts_train_{frac}.jsonl.gz")
    (tmp_path / "fake_cell.py").write_text(FAKE)
    monkeypatch.setenv("CALLS", str(tmp_path / "calls.jsonl"))
    monkeypatch.delenv("FAIL_CELL", raising=False)
    return tmp_path


PLAN = ["plan", "--study-dir", "exp/study", "--objectives", "contrastive", "--fractions", "0.5 1"]
RUN = ["run", "--study-dir", "exp/study", "--", sys.executable, "fake_cell.py"]


def calls(root: Path) -> list[list[str]]:
    path = root / "calls.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def test_expand_order_names_and_cell_args(study):
    o = StudyOptions(objectives=("contrastive", "captioning"), fractions=("0.5", "1"),
                     inits=("scratch", "supervised"), seeds=("0", "1"),
                     source_sets=("all", "only:audiocaps,wavcaps"), study_dir="exp/study/",
                     init_checkpoint="tagger.pt", init_key_map="km.yaml", train_args="a=1",
                     eval_args="eval.num_workers=0", eval_config="conf/e.yaml",
                     eval_tasks="conf/tasks/x.yaml conf/tasks/y.yaml", nj="3",
                     launcher="torchrun --standalone", tag_args="t=1")  # fmt: skip
    runs = expand(o)
    assert len(runs) == 2 * 2 * 2 * 2 * 2
    assert [r.name for r in runs[:5]] == [
        "contrastive_scratch_f0.5_all_s0",
        "contrastive_scratch_f0.5_all_s1",
        "contrastive_supervised_f0.5_all_s0",
        "contrastive_supervised_f0.5_all_s1",
        "contrastive_scratch_f0.5_only_audiocaps_wavcaps_s0",
    ]
    assert (
        run_name("c", "scratch", "0.1", "all-minus:a,b", "2") == "c_scratch_f0.1_all-minus_a_b_s2"
    )
    r = next(r for r in runs if r.name == "captioning_supervised_f1_only_audiocaps_wavcaps_s1")
    assert r.subset == "data/aggregate/cuts_train_1.0.jsonl.gz"  # float(fraction)
    assert r.train == "exp/study/data/cuts_train_f1_only_audiocaps_wavcaps.jsonl.gz"
    assert list(r.args) == [
        "--data-dir", "data", "--exp-dir", f"exp/study/{r.name}", "--launcher",
        "torchrun --standalone", "--config", "conf/pretrain_captioning.yaml", "--init", "none",
        "--tag-config", "conf/tagging.yaml", "--tag-exp-dir", "exp/study/tagging",
        "--tag-args", "t=1", "--nj", "3", "--train-args",
        f"data.train={r.train} seed=1 tags.objective=captioning tags.fraction=1 "
        "tags.init=supervised tags.source_set=only:audiocaps,wavcaps "
        "encoder.init_from=tagger.pt encoder.init_key_map=km.yaml a=1",
        "--eval-args", "data.train=data/cuts_train.jsonl.gz eval.num_workers=0",
        "--eval-config", "conf/e.yaml", "--eval-tasks", "conf/tasks/x.yaml conf/tasks/y.yaml",
    ]  # fmt: skip
    scratch = next(r for r in runs if r.init == "scratch")
    assert scratch.args[scratch.args.index("--init") + 1] == "none"
    no_ckpt = expand(StudyOptions(objectives=("contrastive",), inits=("supervised",)))
    assert no_ckpt[0].args[no_ckpt[0].args.index("--init") + 1] == "supervised"
    assert "encoder.init_from" not in " ".join(no_ckpt[0].args)
    with pytest.raises(StudyError, match="--inits takes scratch and/or supervised, got 'x'"):
        expand(StudyOptions(inits=("x",)))


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--objectives", "contrastive nope"],
         "objective 'nope': config conf/pretrain_nope.yaml not found (--config-pattern)"),
        (["--fractions", "0.25"], "data/aggregate/cuts_train_0.25.jsonl.gz not found (write "
         "nested subsets with toolkit.bin.aggregate --fractions)"),
        (["--inits", "scratch pretrained"],
         "--inits takes scratch and/or supervised, got 'pretrained'"),
        (["--fractions", "half"], "--fractions: 'half' is not a number"),
        (["--source-sets", "some:x"], "--source-sets: source set 'some:x': expected 'all'"),
        (["--seeds", ""], "empty grid"),
    ],
)  # fmt: skip
def test_plan_errors_are_one_line(study, capsys, extra, message):
    assert main(["plan", "--study-dir", "exp/study", *extra]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("toolkit-study plan: ") and message in err and "\n" not in err
    assert not (study / "exp/study/plan.json").exists()


def test_plan_prints_the_grid_and_writes_plan_json(study, capsys):
    assert main(PLAN) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[0].split()
    assert header[:3] == ["cell", "objective", "fraction"] and header[-1] == "status"
    assert "contrastive_scratch_f1_all_s0" in out and "cuts_train_1.0.jsonl.gz" in out
    assert "2 cells (0 done, 0 partial, 2 todo)" in out
    options, runs, cwd = read_plan(study / "exp/study/plan.json")
    assert cwd == study.resolve() and options.fractions == ("0.5", "1")
    assert [r.name for r in runs] == ["contrastive_scratch_f0.5_all_s0", "contrastive_scratch_f1_all_s0"]  # fmt: skip
    assert os.listdir(study / "exp/study") == ["plan.json"]  # atomic write: no temporary left


def test_run_skips_done_cells_and_resumes_after_a_failure(study, capsys, monkeypatch):
    assert main(PLAN) == 0
    monkeypatch.setenv("FAIL_CELL", "contrastive_scratch_f1_all_s0")
    assert main(RUN) == 1
    cap = capsys.readouterr()
    assert cap.err.strip() == (
        "toolkit-study run: cell contrastive_scratch_f1_all_s0 failed (exit status 3); "
        "log: exp/study/logs/contrastive_scratch_f1_all_s0.log"
    )
    assert "fake pretrain.sh for contrastive_scratch_f0.5_all_s0" in cap.out
    log = (study / "exp/study/logs/contrastive_scratch_f1_all_s0.log").read_text()
    assert "fake_cell.py --data-dir data" in log and "boom" in log  # command, stdout + stderr
    assert len(calls(study)) == 2

    monkeypatch.delenv("FAIL_CELL")
    assert main(RUN) == 0  # the finished cell is skipped, the failed one runs again
    out = capsys.readouterr().out
    assert out.count("skip: cell") == 1 and "skip: cell contrastive_scratch_f0.5_all_s0" in out
    assert [c[c.index("--exp-dir") + 1] for c in calls(study)][2:] == [
        "exp/study/contrastive_scratch_f1_all_s0"
    ]
    assert main(RUN) == 0
    assert capsys.readouterr().out.count("skip: cell") == 2 and len(calls(study)) == 3
    assert main(PLAN) == 0
    assert "2 cells (2 done, 0 partial, 0 todo)" in capsys.readouterr().out


def test_status_follows_pretrain_sh(study):
    (run,) = expand(StudyOptions(objectives=("contrastive",)))
    exp = study / run.exp_dir
    assert run_status(run) == ("todo", "not started")
    (exp / "checkpoints").mkdir(parents=True)
    assert run_status(run)[0] == "partial"  # interrupted training
    (exp / "model.pt").write_text("m")
    assert run_status(run) == ("partial", "eval/results.md missing")
    (exp / "eval").mkdir()
    (exp / "eval" / "results.md").write_text("r")
    assert run_status(run)[0] == "done"
    assert run_status(run, "conf/tasks/esc50.yaml") == ("partial", "eval_esc50/results.md missing")
    (exp / "eval_esc50").mkdir()
    (exp / "eval_esc50" / "results.md").write_text("r")
    assert run_status(run, "conf/tasks/esc50.yaml")[0] == "done"
    later = time.time() + 10
    os.utime(exp / "model.pt", (later, later))  # retrained: stage 5 would evaluate again
    assert run_status(run) == ("partial", "eval/results.md older than model.pt")


def test_run_writes_source_sets_before_their_cells(study, capsys):
    assert main([*PLAN, "--fractions", "1.0", "--source-sets", "all only:paraspeechcaps"]) == 0
    assert main(RUN) == 0
    train = study / "exp/study/data/cuts_train_f1.0_only_paraspeechcaps.jsonl.gz"
    (cut,) = CutSet.from_file(train)
    assert cut_custom(cut)["caption"] == ["a voice"]
    trains = [c[c.index("--train-args") + 1].split()[0] for c in calls(study)]
    assert trains == [
        "data.train=data/aggregate/cuts_train_1.0.jsonl.gz",
        f"data.train=exp/study/data/{train.name}",
    ]
    capsys.readouterr()
    assert main([*PLAN, "--fractions", "1.0", "--source-sets", "only:clotho"]) == 0
    assert main(RUN) == 1  # no caption of that source: one line, no empty manifest left
    assert "leaves no cut" in capsys.readouterr().err
    assert not (study / "exp/study/data/cuts_train_f1.0_only_clotho.jsonl.gz").exists()


def test_report_over_the_cells_of_the_plan(study, capsys, tmp_path, monkeypatch):
    assert main(PLAN) == 0
    assert main(RUN) == 0
    for _, frac, value in (("a", "0.5", 50.0), ("b", "1", 60.0)):
        base = {"tag_objective": "contrastive", "tag_fraction": frac, "tag_init": "scratch",
                "tag_source_set": "all", "seed": "0"}  # fmt: skip
        rows = [{"model": "pretrained", "group": "linear probe (mean pool)", "task": "music_genre",
                 "metric": "acc", "value": value, "chance": 10.0, **base}]  # fmt: skip
        write_results_csv(rows, study / f"exp/study/contrastive_scratch_f{frac}_all_s0/eval/results.csv")  # fmt: skip
    (study / "exp/study/stray_s0/eval").mkdir(parents=True)  # not in the plan: not reported
    capsys.readouterr()
    assert main(["report", "--study-dir", "exp/study"]) == 0
    md = (study / "exp/study/report/study.md").read_text()
    assert "f=0.5" in md and "50.0" in md and "60.0" in md
    assert "report over 2 cells → exp/study/report" in capsys.readouterr().out
    # from another directory: the plan's paths are relative to where it was made
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert main(["report", "--study-dir", str(study / "exp/study"), "--out-dir", "rep2"]) == 0
    assert (tmp_path / "elsewhere" / "rep2" / "study.md").is_file()


def test_run_needs_a_plan_and_a_command(study, capsys):
    assert main(RUN) == 1
    assert "plan.json not found (make the plan first" in capsys.readouterr().err
    assert main(PLAN) == 0
    assert main(["run", "--study-dir", "exp/study"]) == 1
    assert "give the cell command after --" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["report", "--", "x"])
