"""The study grid: plan it, run its unfinished cells, report over it.

``toolkit-study plan --study-dir exp/study --objectives "contrastive captioning" --fractions
"0.1 1.0" --inits "scratch supervised" [...]`` checks the grid, prints it (one row per cell, i.e.
run directory, with its status: done / partial / todo) and writes ``<study-dir>/plan.json``.
``toolkit-study run --study-dir exp/study -- egs/TEMPLATE/pretrain.sh --stage 4 --stop-stage 5``
runs the command given after ``--``, with each cell's arguments appended, for every cell of the
plan that is not done (in plan order; output also in ``<study-dir>/logs/<cell>.log``); the first
failing cell stops it. ``toolkit-study report --study-dir exp/study`` writes the study report
(``toolkit.bin.report``) over the cells of the plan into ``<study-dir>/report``.
See docs/study.md; egs/TEMPLATE/study.sh sequences the three.
"""

from __future__ import annotations

import argparse
import codecs
import shlex
import subprocess
import sys
import time
from dataclasses import fields
from pathlib import Path

from toolkit.config import ConfigError
from toolkit.evaluate.study_grid import (
    PLAN_FILE,
    STATUSES,
    StudyError,
    StudyOptions,
    StudyRun,
    expand,
    materialise,
    read_plan,
    run_status,
    write_plan,
)
from toolkit.utils.logging import setup_logging

WORD_LISTS = ("objectives", "fractions", "inits", "seeds", "source_sets")
_OPTION_NAMES = tuple(f.name for f in fields(StudyOptions))
HELPS = {
    "objectives": "objective names (space-separated; each needs a config, --config-pattern)",
    "fractions": "data fractions (space-separated), nested subsets in --subset-dir",
    "inits": "scratch and/or supervised",
    "seeds": "seeds (space-separated)",
    "source_sets": "caption-source sets: all | only:a,b | all-minus:a,b (space-separated)",
    "subset_dir": "nested subsets cuts_train_<float(fraction)>.jsonl.gz",
    "data_dir": "probe/evaluation data cuts_{train,dev,test}.jsonl.gz of every cell",
    "study_dir": "one run directory per cell, plan.json, logs/, report/",
    "config_pattern": "config of an objective ({objective} is replaced)",
    "tag_config": "config of the shared tagging run (supervised init)",
    "tag_args": "overrides of the tagging run",
    "init_checkpoint": "supervised init from this checkpoint instead of a tagging run",
    "init_key_map": "encoder.init_key_map for --init-checkpoint",
    "train_args": "overrides for every cell's training",
    "eval_args": "overrides for every cell's evaluation",
    "eval_config": "extra YAML file(s) for stage 5 of every cell",
    "eval_tasks": "downstream task configs evaluated for every cell",
    "nj": "workers (pretrain.sh --nj)",
    "launcher": "training command of every cell (pretrain.sh --launcher)",
}


def say(msg: str) -> None:
    """A progress line on stdout, as the recipes print them."""
    print(f"{time.strftime('%H:%M:%S')} [study] {msg}", flush=True)


def plan_table(runs: list[StudyRun], statuses: list[str]) -> str:
    """The plan as a fixed-width text table, one row per cell (run directory)."""
    head = ("cell", "objective", "fraction", "init", "source set", "seed", "training manifest",
            "status")  # fmt: skip
    rows = [head] + [
        (r.name, r.objective, r.fraction, r.init, r.source_set, r.seed, r.train, s)
        for r, s in zip(runs, statuses, strict=True)
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    return "\n".join(
        "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def _cells(n: int) -> str:
    return f"{n} cell" if n == 1 else f"{n} cells"


def _local(base: Path, path: str) -> str:
    """``path`` (relative to the plan's directory ``base``) as seen from here."""
    return path if Path.cwd().resolve() == base else str(base / path)


def plan(options: StudyOptions) -> int:
    """Check and expand the grid, print it and write ``<study_dir>/plan.json``."""
    base = Path.cwd()
    runs = expand(options, base)
    statuses = [run_status(r, options.eval_tasks, base)[0] for r in runs]
    path = Path(options.study_dir) / PLAN_FILE
    write_plan(path, options, runs, base)
    counts = ", ".join(f"{statuses.count(s)} {s}" for s in STATUSES)
    print(plan_table(runs, statuses))
    say(f"{_cells(len(runs))} ({counts}) → {path}")
    return 0


def run(study_dir: Path, command: list[str]) -> int:
    """Run ``command`` + each cell's arguments for every cell of the plan that is not done."""
    if not command:
        raise StudyError("give the cell command after --, e.g. "
                         "-- egs/TEMPLATE/pretrain.sh --stage 4 --stop-stage 5")  # fmt: skip
    options, runs, base = read_plan(study_dir / PLAN_FILE)
    logs = f"{options.study_dir.rstrip('/') or '/'}/logs"
    (base / logs).mkdir(parents=True, exist_ok=True)
    skipped = 0
    for k, r in enumerate(runs, 1):
        status, why = run_status(r, options.eval_tasks, base)
        if status == "done":
            say(f"skip: cell {r.name} is done ({why})")
            skipped += 1
            continue
        say(f"cell {r.exp_dir} ({k}/{len(runs)}, {status}: {why})")
        if materialise(r, base):
            say(f"source set {r.source_set} of {r.subset} → {r.train}")
        log_path = f"{logs}/{r.name}.log"
        rc = _tee([*command, *r.args], base, base / log_path)
        if rc != 0:
            raise StudyError(
                f"cell {r.name} failed (exit status {rc}); log: {_local(base, log_path)}"
            )
    say(f"{_cells(len(runs) - skipped)} run, {skipped} skipped (done)")
    return 0


def _tee(cmd: list[str], cwd: Path, log_path: Path) -> int:
    """Run ``cmd`` in ``cwd``; its stdout and stderr go to our stdout and (appended) to
    ``log_path``. Returns its exit status."""
    with open(log_path, "ab") as log:
        log.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} {shlex.join(cmd)}\n".encode())
        try:
            proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        except OSError as e:
            raise StudyError(f"cell command {cmd[0]}: {e.strerror}") from None
        decode = codecs.getincrementaldecoder("utf-8")("replace").decode
        assert proc.stdout is not None
        try:
            while chunk := proc.stdout.read1(65536):
                log.write(chunk)
                log.flush()
                sys.stdout.write(decode(chunk))
                sys.stdout.flush()
            sys.stdout.write(decode(b"", final=True))
        except KeyboardInterrupt:
            proc.wait()
            raise
        return proc.wait()


def report(study_dir: Path, out_dir: str | None) -> int:
    """The study report (``toolkit.bin.report``) over the cells of the plan."""
    from toolkit.bin.report import main as report_main

    options, runs, base = read_plan(study_dir / PLAN_FILE)
    out = out_dir or _local(base, f"{options.study_dir.rstrip('/') or '/'}/report")
    say(f"report over {_cells(len(runs))} → {out}")
    return report_main(["--runs", *(_local(base, r.exp_dir) for r in runs), "--out-dir", out])


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="toolkit-study",
        description=__doc__.splitlines()[0],
        epilog="docs/study.md; values starting with '-' need the --option=value form",
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    d = StudyOptions()
    pl = sub.add_parser("plan", help="check and expand the grid, print it, write plan.json")
    for name in _OPTION_NAMES:
        default = getattr(d, name)
        if name in WORD_LISTS:
            default = " ".join(default)
        pl.add_argument(f"--{name.replace('_', '-')}", default=default,
                        help=f"{HELPS.get(name, '')} (default: {default!r})".lstrip())  # fmt: skip
    rn = sub.add_parser(
        "run",
        help="run every cell of the plan that is not done: toolkit-study run -- CMD ARGS...",
        description="Runs CMD ARGS... <the cell's pretrain.sh arguments> for every cell of the "
        "plan that is not done, in plan order; stops at the first failure.",
    )
    rp = sub.add_parser(
        "report", help="the study report (toolkit.bin.report) over the cells of the plan"
    )
    rp.add_argument("--out-dir", default=None, help="default: <study-dir>/report")
    for q in (rn, rp):
        q.add_argument("--study-dir", default=d.study_dir, help="with plan.json")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, command = argv[:i], argv[i + 1 :]
    p = _parser()
    args = p.parse_args(argv)
    if command and args.cmd != "run":
        p.error(f"{args.cmd} takes no command after --")
    setup_logging()
    try:
        if args.cmd == "plan":
            values = {k: getattr(args, k) for k in _OPTION_NAMES}
            for name in WORD_LISTS:
                values[name] = tuple(values[name].split())
            return plan(StudyOptions(**values))
        if args.cmd == "run":
            return run(Path(args.study_dir), command)
        return report(Path(args.study_dir), args.out_dir)
    except StudyError as e:
        print(f"toolkit-study {args.cmd}: {e}", file=sys.stderr)
        return 1
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"toolkit-study {args.cmd}: interrupted (run it again to resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
