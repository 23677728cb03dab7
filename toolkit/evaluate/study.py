"""The study report: tables and plots over a grid of runs (objective × data fraction × init ×
caption-source set × seed), from each run's ``eval/results.csv``.

Each cell is one run directory whose result rows carry the run's tags (``tag_objective``,
``tag_fraction``, ``tag_init``, ``tag_source_set``; see ``tags`` in docs/config.md) and ``seed``.
Results are summarised per **family**: a linear-probe-style group's mean over the tasks of one
domain (``linear probe (mean pool) · music``), zero-shot accuracy per domain, retrieval R@1 per
direction and captioning CIDEr-D. Cells that differ only in seed are averaged (mean ± std).
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from toolkit.evaluate.report import domain_of, read_results_csv

CELL_KEYS = ("objective", "fraction", "init", "source_set")
DEFAULT_CELL = {"objective": "?", "fraction": "1.0", "init": "scratch", "source_set": "all"}
PROBE_PREFIXES = ("linear probe", "probe")
ACC_METRICS = ("acc", "mAP")


@dataclass(frozen=True, order=True)
class Cell:
    objective: str
    fraction: float
    init: str
    source_set: str

    def label(self) -> str:
        return f"{self.objective}/{self.init}/f{self.fraction:g}/{self.source_set}"


def family_of(row: dict) -> str | None:
    """The summary family of a result row (None: not summarised)."""
    group, task, metric = str(row["group"]), str(row["task"]), str(row["metric"])
    low = group.lower()
    if low.startswith(PROBE_PREFIXES) and metric in ACC_METRICS:
        return f"{group} · {domain_of(task)}"
    if low.startswith("zero-shot") and metric in ACC_METRICS:
        return f"{group} · {domain_of(task)}"
    if low.startswith("retrieval") and metric == "R@1":
        return f"{group} {task} R@1"
    if low.startswith("captioning") and metric == "CIDEr-D":
        return f"{group} CIDEr-D"
    return None


def _cell_of(row: dict) -> Cell:
    vals = {k: row.get(f"tag_{k}") or DEFAULT_CELL[k] for k in CELL_KEYS}
    return Cell(vals["objective"], float(vals["fraction"]), vals["init"], vals["source_set"])


def load_study(run_dirs: Sequence[Path]) -> list[dict]:
    """Result rows of the pretrained model of every run (``<run>/eval/results.csv`` and the task
    evaluations ``<run>/eval_<task>/results.csv``), each with ``cell`` (a :class:`Cell`) and
    ``run`` added. Runs without results are skipped."""
    rows = []
    for run in run_dirs:
        for path in sorted(Path(run).glob("eval*/results.csv")):
            rows.extend(_pretrained_rows(path, run))
    return rows


def _pretrained_rows(path: Path, run: Path) -> list[dict]:
    rows = []
    for r in read_results_csv(path):
        if r["model"] != "pretrained" or r["value"] is None:
            continue
        r["cell"] = _cell_of(r)
        r["run"] = str(run)
        rows.append(r)
    return rows


def family_table(rows: Sequence[dict]) -> dict[tuple[Cell, str], tuple[float, float, int]]:
    """``{(cell, family): (mean, std, n_seeds)}``: per run, the mean over the family's tasks;
    then mean and (sample) std over the runs (seeds) of the cell."""
    per_run: dict[tuple[Cell, str, str], list[float]] = defaultdict(list)
    for r in rows:
        fam = family_of(r)
        if fam is not None:
            per_run[(r["cell"], fam, r["run"])].append(float(r["value"]))
    per_cell: dict[tuple[Cell, str], list[float]] = defaultdict(list)
    for (cell, fam, _), vals in per_run.items():
        per_cell[(cell, fam)].append(sum(vals) / len(vals))
    return {
        key: (statistics.fmean(v), statistics.stdev(v) if len(v) > 1 else 0.0, len(v))
        for key, v in per_cell.items()
    }


def task_table(rows: Sequence[dict]) -> dict[tuple[Cell, str, str, str], tuple[float, float, int]]:
    """``{(cell, group, task, metric): (mean, std, n_seeds)}`` over the runs of each cell."""
    acc: dict[tuple, list[float]] = defaultdict(list)
    for r in rows:
        acc[(r["cell"], r["group"], r["task"], r["metric"])].append(float(r["value"]))
    return {
        k: (statistics.fmean(v), statistics.stdev(v) if len(v) > 1 else 0.0, len(v))
        for k, v in acc.items()
    }


def _fmt(stat: tuple[float, float, int] | None) -> str:
    if stat is None:
        return "-"
    mean, std, n = stat
    return f"{mean:.1f} ± {std:.1f}" if n > 1 else f"{mean:.1f}"


def _md(header: list[str], lines: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return out + ["| " + " | ".join(line) + " |" for line in lines]


def _sorted_unique(values) -> list:
    return sorted(set(values), key=lambda v: (str(type(v)), v))


def render_study(rows: Sequence[dict]) -> tuple[str, list[dict]]:
    """The study's Markdown tables and their long-format CSV rows.

    Tables: (1) objective × task × pooling at the largest fraction (per init, all sources);
    (2) family score vs data fraction per objective and init; (3) gain from supervised
    initialisation (supervised − scratch) per objective, family and fraction; (4) caption-source
    ablation per objective at the largest fraction.
    """
    fam = family_table(rows)
    tasks = task_table(rows)
    cells = _sorted_unique(k[0] for k in fam)
    if not cells:
        return "# Study report\n\nNo results found.\n", []
    objectives = _sorted_unique(c.objective for c in cells)
    inits = _sorted_unique(c.init for c in cells)
    fractions = _sorted_unique(c.fraction for c in cells)
    families = _sorted_unique(k[1] for k in fam)
    top = max(fractions)
    csv_rows: list[dict] = []
    for (cell, family), (mean, std, n) in sorted(
        fam.items(), key=lambda kv: (kv[0][0].label(), kv[0][1])
    ):
        csv_rows.append({"objective": cell.objective, "fraction": cell.fraction, "init": cell.init,
                         "source_set": cell.source_set, "family": family, "mean": mean,
                         "std": std, "seeds": n})  # fmt: skip
    lines = ["# Study report", ""]
    lines.append(f"Cells: {len(cells)} ({', '.join(c.label() for c in cells)}). Values are "
                 "percentages (CIDEr-D ×100); `a ± b` = mean ± std over seeds.")  # fmt: skip

    # (1) objective × task × pooling at the largest fraction, all sources
    lines += ["", f"## 1. Objective × task × protocol (fraction {top:g}, sources: all)", ""]
    keys = _sorted_unique(
        (g, t, m) for (c, g, t, m) in tasks if c.fraction == top and c.source_set == "all"
    )
    cols = [(o, i) for o in objectives for i in inits]
    body = []
    for g, t, m in keys:
        vals = [tasks.get((Cell(o, top, i, "all"), g, t, m)) for o, i in cols]
        if any(v is not None for v in vals):
            body.append([g, t, m, *(_fmt(v) for v in vals)])
    lines += _md(["protocol", "task", "metric", *(f"{o} ({i})" for o, i in cols)], body)

    # (2) data-fraction curves
    lines += ["", "## 2. Score vs pretraining data fraction (sources: all)", ""]
    for init in inits:
        lines += ["", f"### init: {init}", ""]
        body = []
        for family in families:
            for obj in objectives:
                vals = [fam.get((Cell(obj, f, init, "all"), family)) for f in fractions]
                if any(v is not None for v in vals):
                    body.append([family, obj, *(_fmt(v) for v in vals)])
        lines += _md(["family", "objective", *(f"f={f:g}" for f in fractions)], body)

    # (3) gain from supervised initialisation
    if "scratch" in inits and "supervised" in inits:
        lines += ["", "## 3. Gain from supervised initialisation (supervised − scratch)", ""]
        body = []
        for family in families:
            for obj in objectives:
                gains = []
                for f in fractions:
                    a = fam.get((Cell(obj, f, "supervised", "all"), family))
                    b = fam.get((Cell(obj, f, "scratch", "all"), family))
                    gains.append(None if a is None or b is None else a[0] - b[0])
                    if gains[-1] is not None:
                        csv_rows.append({"objective": obj, "fraction": f, "init": "gain",
                                         "source_set": "all", "family": family,
                                         "mean": gains[-1], "std": None, "seeds": None})  # fmt: skip
                if any(g is not None for g in gains):
                    body.append([family, obj, *("-" if g is None else f"{g:+.1f}" for g in gains)])
        lines += _md(["family", "objective", *(f"f={f:g}" for f in fractions)], body)

    # (4) caption-source ablation
    source_sets = _sorted_unique(c.source_set for c in cells)
    if len(source_sets) > 1:
        lines += ["", f"## 4. Caption-source ablation (fraction {top:g})", ""]
        body = []
        for family in families:
            for obj in objectives:
                for init in inits:
                    vals = [fam.get((Cell(obj, top, init, s), family)) for s in source_sets]
                    if any(v is not None for v in vals):
                        body.append([family, f"{obj} ({init})", *(_fmt(v) for v in vals)])
        lines += _md(["family", "objective", *source_sets], body)
    return "\n".join(lines) + "\n", csv_rows


def plot_scaling(rows: Sequence[dict], path: Path) -> None:
    """One panel per family: score vs data fraction (log x), one line per objective; solid =
    scratch, dashed = supervised init; error bars = std over seeds."""
    fam = family_table([r for r in rows if r["cell"].source_set == "all"])
    families = _sorted_unique(k[1] for k in fam)
    if not families:
        return
    ncol = min(3, len(families))
    nrow = math.ceil(len(families) / ncol)
    fig = Figure(figsize=(4.2 * ncol, 3.2 * nrow))
    FigureCanvasAgg(fig)
    objectives = _sorted_unique(k[0].objective for k in fam)
    colors = {o: f"C{i}" for i, o in enumerate(objectives)}
    for i, family in enumerate(families):
        ax = fig.add_subplot(nrow, ncol, i + 1)
        for obj in objectives:
            for init, style in (("scratch", "-"), ("supervised", "--")):
                pts = sorted(
                    (c.fraction, v) for (c, f), v in fam.items()
                    if f == family and c.objective == obj and c.init == init
                )  # fmt: skip
                if pts:
                    ax.errorbar([p[0] for p in pts], [p[1][0] for p in pts],
                                yerr=[p[1][1] for p in pts], linestyle=style, marker="o",
                                color=colors[obj], label=f"{obj} ({init})", capsize=2)  # fmt: skip
        ax.set_xscale("log")
        ax.set_title(family, fontsize=9)
        ax.set_xlabel("pretraining data fraction")
        ax.grid(alpha=0.3)
        if i == 0:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def plot_init_gain(rows: Sequence[dict], path: Path) -> None:
    """Grouped bars: supervised − scratch per family, one bar per (objective, fraction)."""
    fam = family_table([r for r in rows if r["cell"].source_set == "all"])
    families = _sorted_unique(k[1] for k in fam)
    bars: dict[tuple[str, float], list[float | None]] = {}
    for obj in _sorted_unique(k[0].objective for k in fam):
        for f in _sorted_unique(k[0].fraction for k in fam):
            gains = []
            for family in families:
                a = fam.get((Cell(obj, f, "supervised", "all"), family))
                b = fam.get((Cell(obj, f, "scratch", "all"), family))
                gains.append(None if a is None or b is None else a[0] - b[0])
            if any(g is not None for g in gains):
                bars[(obj, f)] = gains
    if not bars:
        return
    fig = Figure(figsize=(min(16.0, 3.0 + 0.9 * len(families)), 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / len(bars)
    for j, ((obj, f), gains) in enumerate(bars.items()):
        xs = [i + j * width for i in range(len(families))]
        ax.bar(xs, [g or 0.0 for g in gains], width, label=f"{obj} f={f:g}")
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(families))])
    ax.set_xticklabels(families, rotation=30, ha="right", fontsize=7)
    ax.axhline(0, color="k", linewidth=0.8)
    ax.set_ylabel("supervised − scratch (points)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
