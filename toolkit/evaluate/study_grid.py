"""The study grid as data: its runs, their status, and the plan file (``toolkit.bin.study``).

The grid is objectives × nested data fractions × initialisations × caption-source sets × seeds;
each combination is one **run** (a run directory ``<study_dir>/<name>``, trained and evaluated by
``egs/TEMPLATE/pretrain.sh --stage 4 --stop-stage 5``). The report groups the runs that differ
only in seed into one :class:`toolkit.evaluate.study.Cell` (mean ± std); a :class:`StudyRun` is
one seed of such a cell.

Paths in a plan are kept as given (relative ones are relative to the directory the plan was made
in, recorded as ``cwd`` in ``plan.json``).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

INITS = ("scratch", "supervised")
PLAN_FILE = "plan.json"
PLAN_VERSION = 1
STATUSES = ("done", "partial", "todo")


class StudyError(ValueError):
    """A grid that cannot be planned or run; the message is one line for the user."""


@dataclass(frozen=True)
class StudyOptions:
    """The options of a study (those of ``egs/TEMPLATE/study.sh``, same defaults). Lists are
    tuples of words; the ``*_args`` strings are passed on verbatim."""

    objectives: tuple[str, ...] = ("contrastive", "captioning")
    fractions: tuple[str, ...] = ("1.0",)
    inits: tuple[str, ...] = ("scratch",)
    seeds: tuple[str, ...] = ("0",)
    source_sets: tuple[str, ...] = ("all",)
    subset_dir: str = "data/aggregate"
    data_dir: str = "data"
    study_dir: str = "exp/study"
    config_pattern: str = "conf/pretrain_{objective}.yaml"
    tag_config: str = "conf/tagging.yaml"
    tag_args: str = ""
    init_checkpoint: str = ""
    init_key_map: str = ""
    train_args: str = ""
    eval_args: str = ""
    eval_config: str = ""
    eval_tasks: str = ""
    nj: str = "2"
    launcher: str = ""


@dataclass(frozen=True)
class StudyRun:
    """One run of the grid: its coordinates, files and the arguments that the cell command
    (``pretrain.sh --stage 4 --stop-stage 5``) gets for it."""

    name: str
    objective: str
    fraction: str  # as given: the run name and ``tags.fraction`` use it verbatim
    init: str
    source_set: str
    seed: str
    config: str
    subset: str  # the nested subset manifest of the fraction
    train: str  # the training manifest: the subset, restricted to the source set
    exp_dir: str
    args: tuple[str, ...]


def slug(source_set: str) -> str:
    """A source set as a path part (``only:a,b`` → ``only_a_b``)."""
    return source_set.replace(":", "_").replace(",", "_")


def run_name(objective: str, init: str, fraction: str, source_set: str, seed: str) -> str:
    """``<objective>_<init>_f<fraction>_<source set>_s<seed>``."""
    return f"{objective}_{init}_f{fraction}_{slug(source_set)}_s{seed}"


def subset_manifest(subset_dir: str, fraction: str) -> str:
    """The nested subset of a fraction: ``<subset_dir>/cuts_train_<float(fraction)>.jsonl.gz``."""
    try:
        value = float(fraction)
    except ValueError:
        raise StudyError(f"--fractions: {fraction!r} is not a number") from None
    return f"{subset_dir}/cuts_train_{value}.jsonl.gz"


def init_settings(init: str, init_checkpoint: str, init_key_map: str) -> tuple[str, str]:
    """``(pretrain.sh --init flag, extra train overrides)`` of an initialisation."""
    if init not in INITS:
        raise StudyError(f"--inits takes scratch and/or supervised, got '{init}'")
    if init == "scratch":
        return "none", ""
    if not init_checkpoint:
        return "supervised", ""
    extra = f"encoder.init_from={init_checkpoint}"
    if init_key_map:
        extra += f" encoder.init_key_map={init_key_map}"
    return "none", extra


def cell_args(o: StudyOptions, *, exp_dir: str, config: str, init_flag: str, train: str,
              seed: str, objective: str, fraction: str, init: str, source_set: str,
              init_args: str) -> list[str]:  # fmt: skip
    """The per-run arguments of ``pretrain.sh`` (after ``--stage 4 --stop-stage 5``)."""
    train_args = (
        f"data.train={train} seed={seed} tags.objective={objective} tags.fraction={fraction} "
        f"tags.init={init} tags.source_set={source_set} {init_args} {o.train_args}"
    )
    return [
        "--data-dir", o.data_dir, "--exp-dir", exp_dir, "--launcher", o.launcher,
        "--config", config, "--init", init_flag, "--tag-config", o.tag_config,
        "--tag-exp-dir", f"{_dir(o.study_dir)}/tagging", "--tag-args", o.tag_args,
        "--nj", o.nj, "--train-args", train_args,
        "--eval-args", f"data.train={o.data_dir}/cuts_train.jsonl.gz {o.eval_args}",
        "--eval-config", o.eval_config, "--eval-tasks", o.eval_tasks,
    ]  # fmt: skip


def expand(o: StudyOptions, base: Path | None = None) -> list[StudyRun]:
    """The runs of the grid in run order (objective, fraction, source set, init, seed), after
    checking every objective's config, every fraction's subset manifest, every init and source
    set (relative paths are looked up under ``base``, default: the current directory)."""
    from toolkit.data.source_sets import parse_spec

    base = base or Path.cwd()
    for init in o.inits:
        init_settings(init, o.init_checkpoint, o.init_key_map)
    for spec in o.source_sets:
        try:
            parse_spec(spec)
        except ValueError as e:
            raise StudyError(f"--source-sets: {e}") from None
    if not all((o.objectives, o.fractions, o.inits, o.seeds, o.source_sets)):
        raise StudyError("empty grid: --objectives, --fractions, --inits, --seeds and "
                         "--source-sets each need at least one value")  # fmt: skip
    runs: dict[str, StudyRun] = {}  # a value given twice is one run
    study = _dir(o.study_dir)
    for obj in o.objectives:
        cfg = o.config_pattern.replace("{objective}", obj)
        if not (base / cfg).is_file():
            raise StudyError(f"objective '{obj}': config {cfg} not found (--config-pattern)")
        for frac in o.fractions:
            subset = subset_manifest(o.subset_dir, frac)
            if not (base / subset).is_file():
                raise StudyError(
                    f"{subset} not found (write nested subsets with toolkit.bin.aggregate "
                    "--fractions)"
                )
            for spec in o.source_sets:
                train = subset
                if spec != "all":
                    train = f"{study}/data/cuts_train_f{frac}_{slug(spec)}.jsonl.gz"
                for init in o.inits:
                    flag, extra = init_settings(init, o.init_checkpoint, o.init_key_map)
                    for seed in o.seeds:
                        name = run_name(obj, init, frac, spec, seed)
                        exp_dir = f"{study}/{name}"
                        args = cell_args(o, exp_dir=exp_dir, config=cfg, init_flag=flag,
                                         train=train, seed=seed, objective=obj, fraction=frac,
                                         init=init, source_set=spec, init_args=extra)  # fmt: skip
                        runs.setdefault(name, StudyRun(name, obj, frac, init, spec, seed, cfg,
                                                       subset, train, exp_dir, tuple(args)))  # fmt: skip
    return list(runs.values())


def task_names(eval_tasks: str) -> list[str]:
    """The output names of the downstream tasks (``eval_<name>``): ``basename TASK .yaml``."""
    names = []
    for task in eval_tasks.split():
        name = Path(task).name
        names.append(name[: -len(".yaml")] if name.endswith(".yaml") and name != ".yaml" else name)
    return names


def run_status(run: StudyRun, eval_tasks: str = "", base: Path | None = None) -> tuple[str, str]:
    """``(status, reason)`` of a run: ``done`` when pretrain.sh stages 4–5 would do nothing
    (``model.pt``, and ``eval/results.md`` plus every task's ``eval_<task>/results.md`` not
    older than it), ``partial`` when the run directory has something else, else ``todo``."""
    exp = (base or Path.cwd()) / run.exp_dir
    model = exp / "model.pt"
    if not model.is_file():
        busy = exp.is_dir() and any(exp.iterdir())
        return ("partial", "training not finished") if busy else ("todo", "not started")
    t_model = model.stat().st_mtime_ns
    for out in ["eval", *(f"eval_{n}" for n in task_names(eval_tasks))]:
        results = exp / out / "results.md"
        if not results.is_file():
            return "partial", f"{out}/results.md missing"
        if results.stat().st_mtime_ns < t_model:
            return "partial", f"{out}/results.md older than model.pt"
    return "done", f"{run.exp_dir}/eval/results.md"


def write_plan(path: Path, options: StudyOptions, runs: list[StudyRun], cwd: Path) -> None:
    """Write the plan (options, runs, the directory relative paths refer to) atomically."""
    doc = {
        "version": PLAN_VERSION,
        "cwd": str(cwd.resolve()),
        "options": asdict(options),
        "runs": [asdict(r) for r in runs],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_plan(path: Path) -> tuple[StudyOptions, list[StudyRun], Path]:
    """``(options, runs, cwd)`` of a plan written by :func:`write_plan`."""
    if not path.is_file():
        raise StudyError(f"{path} not found (make the plan first: toolkit-study plan)")
    try:
        doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        if doc.get("version") != PLAN_VERSION:
            raise StudyError(f"{path}: plan version {doc.get('version')}, expected "
                             f"{PLAN_VERSION} (make the plan again)")  # fmt: skip
        opts = {k: tuple(v) if isinstance(v, list) else v for k, v in doc["options"].items()}
        names = {f.name for f in fields(StudyOptions)}
        options = StudyOptions(**{k: v for k, v in opts.items() if k in names})
        runs = [StudyRun(**{**r, "args": tuple(r["args"])}) for r in doc["runs"]]
        cwd = Path(doc["cwd"])
    except (KeyError, TypeError, json.JSONDecodeError) as e:
        raise StudyError(f"{path}: not a study plan ({e}; make the plan again)") from None
    if not cwd.is_dir():
        raise StudyError(f"{path}: made in {cwd}, which is gone (make the plan again)")
    return options, runs, cwd


def materialise(run: StudyRun, base: Path | None = None) -> bool:
    """Write the run's source-set manifest from its subset when it is missing (``all`` uses the
    subset itself); True when one was written."""
    from toolkit.data.source_sets import write_source_set

    base = base or Path.cwd()
    if run.source_set == "all" or (base / run.train).is_file():
        return False
    if not (base / run.subset).is_file():
        raise StudyError(f"{run.subset} not found (write nested subsets with "
                         "toolkit.bin.aggregate --fractions)")  # fmt: skip
    (base / run.train).parent.mkdir(parents=True, exist_ok=True)
    try:
        write_source_set(base / run.subset, base / run.train, run.source_set)
    except ValueError as e:  # no cut keeps a caption: leave no empty manifest behind
        (base / run.train).unlink(missing_ok=True)
        raise StudyError(f"cell {run.name}: {e}") from None
    return True


def _dir(path: str) -> str:
    return path.rstrip("/") or "/"
