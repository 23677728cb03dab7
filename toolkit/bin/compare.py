"""Compare several evaluated runs in one table (e.g. encoders × initialisations, or objectives).

``python -m toolkit.bin.compare exp/a exp/b ... [--names A,B] [-o compare.md]`` reads every
``<exp>/eval/results.csv`` (stage 5) and prints one markdown row per (run, model): linear-probe
accuracy per domain (mean over the domain's tasks), retrieval R@1 both ways and captioning
CIDEr-D (own decoder / probe decoder) where present. Baselines that do not depend on the run
(``logmel_stats``, ``most_frequent_caption``) are shown once; ``random_init`` is shown per run
because it depends on the architecture. Also writes the table as CSV and a bar plot (``.png``)
next to ``-o``.
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Sequence
from pathlib import Path

from toolkit.bin.common import run_cli
from toolkit.config import ConfigError
from toolkit.evaluate.report import LINEAR_PROBE_PREFIX, domain_summary, read_results_csv

SHARED_BASELINES = ("logmel_stats", "most_frequent_caption")
DOMAINS = ("music", "sound", "speech")
EXTRA_COLUMNS = (
    # (column title, group prefix, task, metric)
    ("a→t R@1", "retrieval", "audio→text", "R@1"),
    ("t→a R@1", "retrieval", "text→audio", "R@1"),
    ("CIDEr-D (own decoder)", "captioning (own", "", "CIDEr-D"),
    ("CIDEr-D (probe decoder)", "captioning (probe", "", "CIDEr-D"),
)


def _lookup(rows: Sequence[dict], model: str, prefix: str, task: str, metric: str) -> float | None:
    for r in rows:
        if (
            r["model"] == model
            and str(r["group"]).startswith(prefix)
            and (not task or r["task"] == task)
            and r["metric"] == metric
        ):
            return r["value"]
    return None


def compare_rows(runs: Sequence[tuple[str, list[dict]]]) -> list[dict]:
    """One dict per (run, model): ``run``, ``model``, domain means and the extra columns."""
    out: list[dict] = []
    shared: dict[str, dict] = {}  # a shared baseline's row, filled from every run that has it
    for name, rows in runs:
        groups = list(dict.fromkeys(r["group"] for r in rows))
        probe = next((g for g in groups if str(g).startswith(LINEAR_PROBE_PREFIX)), None)
        means = domain_summary(rows, probe) if probe else {}
        for model in dict.fromkeys(r["model"] for r in rows):
            values = {d: means.get((model, d)) for d in DOMAINS}
            for title, prefix, task, metric in EXTRA_COLUMNS:
                values[title] = _lookup(rows, model, prefix, task, metric)
            if model in SHARED_BASELINES:
                if model not in shared:
                    shared[model] = {"run": "-", "model": model}
                    out.append(shared[model])
                row = shared[model]
                row.update({k: v for k, v in values.items() if row.get(k) is None})
            else:
                out.append({"run": name, "model": model, **values})
    return out


def render(table: Sequence[dict]) -> str:
    """Markdown table; columns with no value at all are left out."""
    cols = ["run", "model", *DOMAINS, *(c[0] for c in EXTRA_COLUMNS)]
    cols = [c for c in cols if any(r.get(c) is not None for r in table)]

    def cell(v: object) -> str:
        return "-" if v is None else f"{v:.1f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in cols) + " |" for r in table]
    note = "Domains: mean linear-probe accuracy (%) over the domain's tasks."
    return "\n".join(lines) + "\n\n" + note + "\n"


def plot(table: Sequence[dict], path: Path) -> None:
    """Grouped bars: one group per column (domains, R@1, CIDEr-D), one bar per (run, model)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cols = [c for c in (*DOMAINS, *(c[0] for c in EXTRA_COLUMNS))]
    cols = [c for c in cols if any(r.get(c) is not None for r in table)]
    labels = [r["model"] if r["run"] == "-" else f"{r['run']} / {r['model']}" for r in table]
    fig = Figure(figsize=(max(6.0, 1.6 * len(cols) + 2), 4.5))
    ax = fig.add_subplot()
    width = 0.8 / max(1, len(table))
    for j, (label, row) in enumerate(zip(labels, table, strict=True)):
        xs = [i + (j - (len(table) - 1) / 2) * width for i in range(len(cols))]
        ax.bar(xs, [row.get(c) or 0.0 for c in cols], width=width, label=label)
    ax.set_xticks(range(len(cols)))
    ax.set_xticklabels(cols, fontsize=8)
    ax.set_ylabel("% (CIDEr-D ×100)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=120, bbox_inches="tight")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("exp_dirs", nargs="+", help="run directories evaluated by stage 5")
    p.add_argument("--names", default=None, help="comma-separated run names (default: dir names)")
    p.add_argument("-o", "--out", default=None, help="write the markdown table here (+ .csv)")
    args = p.parse_args(argv)
    names = args.names.split(",") if args.names else [Path(d).name for d in args.exp_dirs]
    if len(names) != len(args.exp_dirs):
        raise ConfigError(f"--names: {len(names)} names for {len(args.exp_dirs)} run directories")
    runs = []
    for name, d in zip(names, args.exp_dirs, strict=True):
        path = Path(d) / "eval" / "results.csv"
        if not path.is_file():
            raise ConfigError(f"{path} not found (run stage 5 for {d} first)")
        runs.append((name, read_results_csv(path)))
    table = compare_rows(runs)
    text = render(table)
    print(text)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
        with open(out.with_suffix(".csv"), "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(table[0]) if table else ["run"])
            writer.writeheader()
            writer.writerows(table)
        plot(table, out.with_suffix(".png"))
    return 0


def cli() -> None:
    run_cli(main)


if __name__ == "__main__":
    cli()
