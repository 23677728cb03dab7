"""Before/after table of a model adapted to new data: ``python -m toolkit.bin.before_after
RUN_DIR [-o RUN_DIR/before_after.md]``.

Reads the evaluations the recipe's ``--adapt`` mode writes into the adapted run: ``eval``
(after) beside ``eval_before`` (the starting model on the same data), and every
``eval_<task>`` beside ``eval_before_<task>`` (other tasks, e.g. the demo probes: forgetting).
One markdown table, one row per (evaluation, group, task, metric) of the ``pretrained`` model:
before, after and the change. Written to ``-o`` (and printed).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from toolkit.bin.common import run_cli
from toolkit.config import ConfigError
from toolkit.evaluate.report import read_results_csv

MODEL = "pretrained"


def pairs_of(run: Path) -> list[tuple[str, Path, Path]]:
    """``(name, before results.csv, after results.csv)`` for every evaluation of ``run`` that
    has a before twin."""
    out = []
    for after in sorted(run.glob("eval*/results.csv")):
        name = after.parent.name
        if name.startswith("eval_before"):
            continue
        before = run / name.replace("eval", "eval_before", 1) / "results.csv"
        if before.is_file():
            out.append(("own data" if name == "eval" else name[len("eval_") :], before, after))
    return out


def before_after_rows(pairs: list[tuple[str, Path, Path]]) -> list[dict]:
    """Rows ``{data, group, task, metric, before, after, change}`` of the ``pretrained`` model."""
    rows = []
    for name, before_csv, after_csv in pairs:
        before = {
            (r["group"], r["task"], r["metric"]): r["value"]
            for r in read_results_csv(before_csv)
            if r["model"] == MODEL
        }
        for r in read_results_csv(after_csv):
            key = (r["group"], r["task"], r["metric"])
            if r["model"] != MODEL or key not in before:
                continue
            b, a = before[key], r["value"]
            change = None if a is None or b is None else a - b
            group = key[0].split(" [", 1)[0]  # the evaluation's name is the data column
            rows.append(dict(data=name, group=group, task=key[1], metric=key[2], before=b,
                             after=a, change=change))  # fmt: skip
    return rows


def render(rows: list[dict]) -> str:
    def cell(v: float | None, signed: bool = False) -> str:
        return "-" if v is None else (f"{v:+.1f}" if signed else f"{v:.1f}")

    lines = [
        "| data | group | task | metric | before | after | change |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['data']} | {r['group']} | {r['task']} | {r['metric']} | {cell(r['before'])} "
            f"| {cell(r['after'])} | {cell(r['change'], True)} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", help="the adapted run (with eval/ and eval_before/)")
    p.add_argument("-o", "--out", help="markdown file (default: RUN_DIR/before_after.md)")
    args = p.parse_args(argv)
    run = Path(args.run_dir)
    pairs = pairs_of(run)
    if not pairs:
        raise ConfigError(f"{run}: no eval*/results.csv with an eval_before* twin (run stage 5)")
    md = f"# Before / after adapting: {run.name}\n\n" + render(before_after_rows(pairs))
    out = Path(args.out) if args.out else run / "before_after.md"
    out.write_text(md)
    print(md)
    return 0


def cli() -> None:
    run_cli(main)


if __name__ == "__main__":
    cli()
