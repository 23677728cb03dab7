"""Results report: long-format CSV, markdown pivot + per-domain summary, and plots.

A result row is ``{"model", "group", "task", "metric", "value", "chance"}`` (chance may be
None; value is None for a metric that could not be computed, shown as "-"). Metrics are "higher is
better" percentages (captioning scores ×100) except the retrieval ranks ``medR``/``meanR``
(lower is better; left out of the bar plot).

A row may carry ``not_meaningful`` (a reason, e.g. retrieval scored on captions made from the
labels): results.md shows it as ``n/m`` (never bold) with the reason as a footnote, the plot
leaves it out, results.csv keeps the value and the reason.

``split_counts`` (:func:`data_counts`) adds a "Data" section to results.md: the clips evaluated
per split and the clips skipped on the way (by the prepare, ``<manifest>.skipped.tsv``; by stage
1, ``stats.json``; unreadable at evaluation), so a result on your own data says what it is on.
"""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

COLUMNS = ("model", "group", "task", "metric", "value", "chance")
LINEAR_PROBE_PREFIX = "linear probe"
CAPTIONING_PREFIX = "captioning"
CAPTIONING_NOTE = (
    "Captioning scores are ×100 (CIDEr-D up to 1000); `most_frequent_caption` gives every clip "
    "the most frequent training caption; '-': metric unavailable (see evaluate.log)."
)
LOWER_IS_BETTER_METRICS = frozenset({"medR", "meanR"})  # retrieval ranks (see retrieval.py)
ACCURACY_METRICS = ("acc", "test_acc", "accuracy", "mAP")  # averaged in the per-domain summary
NOT_MEANINGFUL = "n/m"  # cell of a row marked ``not_meaningful``
DATA_HEADING = "## Data"


def _unique(items: Iterable) -> list:
    """Items in first-appearance order, without duplicates."""
    return list(dict.fromkeys(items))


def _fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.1f}"


def _cell(text: str) -> str:
    """Escape a markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _is_linear_probe(group: str) -> bool:
    """Linear-probe-style groups: the L-BFGS ``linear probe (...)`` and the trained ``probe (...)``
    heads (mean / attention pooling)."""
    return str(group).lower().startswith((LINEAR_PROBE_PREFIX, "probe ("))


def domain_of(task: str) -> str:
    """Domain of a task name: its prefix before the first underscore (``speech_language`` ->
    ``speech``)."""
    return str(task).split("_", 1)[0]


def domain_summary(rows: Sequence[dict], group: str | None = None) -> dict[tuple[str, str], float]:
    """Mean linear-probe accuracy per (model, domain).

    Uses rows whose group starts with "linear probe" (or exactly ``group`` if given) and whose
    metric is one of ``ACCURACY_METRICS``; each task's value counts once per row.

    Returns:
        ``{(model, domain): mean value}`` in first-appearance order.
    """
    sums: dict[tuple[str, str], list[float]] = {}
    for r in rows:
        in_group = r["group"] == group if group is not None else _is_linear_probe(r["group"])
        if in_group and r["metric"] in ACCURACY_METRICS and r["value"] is not None:
            sums.setdefault((r["model"], domain_of(r["task"])), []).append(float(r["value"]))
    return {key: sum(v) / len(v) for key, v in sums.items()}


def _table(header: list[str], lines: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(line) + " |" for line in lines]
    return out


def _model_cells(
    values: dict[str, float | None],
    models: list[str],
    lower_is_better: bool = False,
    not_meaningful: Iterable[str] = (),
) -> list[str]:
    """Formatted values, the best one(s) (after rounding) in bold (the smallest for rank
    metrics such as ``medR``); the models in ``not_meaningful`` show ``n/m`` and are never
    bold."""
    nm = set(not_meaningful)
    shown = {m: (NOT_MEANINGFUL if m in nm else _fmt(values[m])) for m in models if m in values}
    finite = [float(s) for s in shown.values() if s not in ("-", NOT_MEANINGFUL)]
    pick = min if lower_is_better else max
    best = _fmt(pick(finite)) if finite else None
    bold = sum(v != NOT_MEANINGFUL for v in shown.values()) > 1 and best is not None
    return [
        ("**" + shown[m] + "**" if bold and shown[m] == best else shown[m]) if m in shown else "-"
        for m in models
    ]


def _value(v: float | None) -> float | None:
    return None if v is None else float(v)


def _pivot(rows: Sequence[dict]) -> tuple[list[str], list[tuple], dict, dict]:
    models = _unique(r["model"] for r in rows)
    keys = _unique((r["group"], r["task"], r["metric"]) for r in rows)
    values: dict[tuple, dict[str, float | None]] = {k: {} for k in keys}
    chance: dict[tuple, float | None] = {k: None for k in keys}
    for r in rows:
        key = (r["group"], r["task"], r["metric"])
        values[key][r["model"]] = _value(r["value"])
        if chance[key] is None and r.get("chance") is not None:
            chance[key] = float(r["chance"])
    return models, keys, values, chance


def _not_meaningful(rows: Sequence[dict]) -> tuple[dict[tuple, set[str]], list[str]]:
    """``{(group, task, metric): models whose value is not meaningful}`` and the reasons."""
    marked: dict[tuple, set[str]] = {}
    for r in rows:
        if r.get("not_meaningful"):
            marked.setdefault((r["group"], r["task"], r["metric"]), set()).add(r["model"])
    return marked, _unique(str(r["not_meaningful"]) for r in rows if r.get("not_meaningful"))


def _skipped_text(skipped: Mapping[str, int]) -> str:
    total = sum(skipped.values())
    if not total:
        return "0"
    return f"{total} (" + ", ".join(f"{k} {v}" for k, v in sorted(skipped.items())) + ")"


def render_data_section(split_counts: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The "Data" section of results.md: one line per split with the clips evaluated and the
    clips skipped (by reason) on the way (``split_counts`` as :func:`data_counts` returns)."""
    lines = []
    listed: list[str] = []
    for split, c in split_counts.items():
        skipped = Counter(c.get("skipped") or {})
        lines.append([_cell(split), str(c.get("clips", "-")), _cell(_skipped_text(skipped))])
        listed += [str(f) for f in c.get("skipped_files") or []]
    out = ["", DATA_HEADING, ""]
    out += _table(["split", "clips", "skipped"], lines)
    out += [
        "",
        "clips: the clips evaluated; skipped: files or clips left out before (unreadable, empty, "
        "shorter than the prepare's `min_duration`, ...)"
        + (": listed in " + ", ".join(f"`{_cell(f)}`" for f in listed) if listed else "")
        + ".",
    ]
    return out


def render_markdown(
    rows: Sequence[dict],
    title: str = "Results",
    split_counts: Mapping[str, Mapping[str, Any]] | None = None,
) -> str:
    """Markdown pivot table (one line per (group, task, metric), one column per model) followed
    by one per-domain summary table per linear-probe group; with ``split_counts`` a "Data"
    section (:func:`render_data_section`) comes first. Rows marked ``not_meaningful`` show
    ``n/m`` with their reason as a footnote."""
    models, keys, values, chance = _pivot(rows)
    marked, reasons = _not_meaningful(rows)
    out = [f"# {title}"]
    if split_counts:
        out += render_data_section(split_counts)
    out += [""]
    header = ["group", "task", "metric"] + [_cell(m) for m in models] + ["chance"]
    lines = [
        [_cell(g), _cell(t), _cell(me)]
        + _model_cells(
            values[(g, t, me)],
            models,
            me in LOWER_IS_BETTER_METRICS,
            marked.get((g, t, me), ()),
        )
        + [_fmt(chance[(g, t, me)])]
        for g, t, me in keys
    ]
    out += _table(header, lines)
    if reasons:
        out += [""] + [f"{NOT_MEANINGFUL}: not meaningful: {_cell(r)}" for r in reasons]
    if any(str(g).lower().startswith(CAPTIONING_PREFIX) for g, _, _ in keys):
        out += ["", CAPTIONING_NOTE]
    for group in _unique(g for g, _, _ in keys if _is_linear_probe(g)):
        summary = domain_summary(rows, group=group)
        if not summary:
            continue
        domains = _unique(d for _, d in summary)
        group_models = [m for m in models if any((m, d) in summary for d in domains)]
        out += ["", f"## Per-domain mean accuracy: {group}", ""]
        lines = []
        for d in domains:
            vals = {m: summary[(m, d)] for m in group_models if (m, d) in summary}
            n_tasks = len(
                _unique(
                    t
                    for g, t, me in keys
                    if g == group and domain_of(t) == d and me in ACCURACY_METRICS
                )
            )
            lines.append([_cell(d), str(n_tasks)] + _model_cells(vals, group_models))
        out += _table(["domain", "tasks"] + [_cell(m) for m in group_models], lines)
    return "\n".join(out) + "\n"


def _save(fig: Figure, path: Path) -> None:
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=120, bbox_inches="tight")


def plot_metrics(rows: Sequence[dict], path: Path, title: str = "") -> None:
    """Horizontal grouped bar chart: one group of bars per (group, task, metric), one bar per
    model, chance level as a black tick."""
    models, keys, values, chance = _pivot(
        [
            r
            for r in rows  # ranks: not a % scale; not-meaningful values: no bar
            if r["metric"] not in LOWER_IS_BETTER_METRICS and not r.get("not_meaningful")
        ]
    )
    n_keys, n_models = len(keys), max(1, len(models))
    fig = Figure(figsize=(10, max(3.0, 0.25 * n_keys * (n_models + 1) + 1.5)))
    ax = fig.add_subplot()
    height = 0.8 / n_models
    for j, model in enumerate(models):
        ys = [i + (j - (n_models - 1) / 2) * height for i in range(n_keys)]
        xs = [values[k].get(model) or 0.0 for k in keys]  # missing/unavailable: no bar
        ax.barh(ys, xs, height=height, label=model)
    for i, key in enumerate(keys):
        if chance[key] is not None:
            ax.plot([chance[key]] * 2, [i - 0.45, i + 0.45], color="black", linewidth=1.5)
    ax.set_yticks(range(n_keys))
    ax.set_yticklabels([f"{g} | {t} | {me}" for g, t, me in keys], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("value (%)  -  black tick: chance")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(title)
    _save(fig, path)


def plot_loss(loss_curves: dict[str, list[tuple[int, float]]], path: Path, title: str = "") -> None:
    """One line per curve: step vs value."""
    fig = Figure(figsize=(8, 4.5))
    ax = fig.add_subplot()
    for name, points in loss_curves.items():
        if points:
            steps, vals = zip(*sorted(points), strict=True)
            ax.plot(steps, vals, label=name)
    ax.set_xlabel("step")
    ax.set_ylabel("value")
    ax.grid(alpha=0.3)
    if any(loss_curves.values()):
        ax.legend(fontsize=8)
    ax.set_title(title)
    _save(fig, path)


def _csv_value(v: object) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)
    return str(v)


def write_results_csv(rows: Sequence[dict], path: Path) -> None:
    """Long-format CSV: columns model,group,task,metric,value,chance, then every extra key of the
    rows (e.g. ``std`` over seeds, provenance ``checkpoint``/``config_hash``/``seed``, run tags
    ``tag_<name>``) in first-appearance order; None is written as an empty cell."""
    extra = _unique(k for r in rows for k in r if k not in COLUMNS)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow([*COLUMNS, *extra])
        for r in rows:
            ch = r.get("chance")
            writer.writerow(
                [
                    r["model"],
                    r["group"],
                    r["task"],
                    r["metric"],
                    "" if r["value"] is None else repr(float(r["value"])),
                    "" if ch is None else repr(float(ch)),
                    *(_csv_value(r.get(k)) for k in extra),
                ]
            )


NUMERIC_EXTRA = ("std",)


def read_results_csv(path: str | Path) -> list[dict]:
    """Inverse of :func:`write_results_csv` (extra columns come back as strings, ``std`` as a
    float; empty cells as None)."""
    out = []
    with open(path, newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            row = {
                **{c: r[c] for c in COLUMNS[:4]},
                "value": float(r["value"]) if r["value"] else None,
                "chance": float(r["chance"]) if r["chance"] else None,
            }
            for k, v in r.items():
                if k not in COLUMNS:
                    row[k] = (float(v) if k in NUMERIC_EXTRA else v) if v else None
            out.append(row)
    return out


def read_scalars_csv(path: str | Path) -> dict[str, list[tuple[int, float]]]:
    """Read a ``step,name,value`` CSV log (e.g. ``train_log.csv``) into ``{name: [(step, v)]}``.

    Rows with a missing or unparsable step/value are skipped; file order is kept.
    """
    curves: dict[str, list[tuple[int, float]]] = {}
    with open(path, newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            try:
                point = (int(float(r["step"])), float(r["value"]))
            except (TypeError, ValueError, KeyError):
                continue
            curves.setdefault(r["name"], []).append(point)
    return curves


def write_report(
    rows: list[dict],
    out_dir: Path,
    title: str = "Results",
    loss_curves: dict[str, list[tuple[int, float]]] | None = None,
    split_counts: Mapping[str, Mapping[str, Any]] | None = None,
) -> str:
    """Write results.csv, results.md, plot_metrics.png (and plot_loss.png if ``loss_curves``)
    into ``out_dir`` (created if needed). ``split_counts`` (:func:`data_counts`): clips
    evaluated and skipped per split, shown in results.md (and written to ``data.json``).

    Returns:
        The markdown text of results.md.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for r in rows:
        missing = [c for c in COLUMNS if c not in r and c != "chance"]
        if missing:
            raise ValueError(f"result row {r} lacks {missing}")
    write_results_csv(rows, out_dir / "results.csv")
    text = render_markdown(rows, title, split_counts)
    (out_dir / "results.md").write_text(text, encoding="utf-8")
    if split_counts:
        _write_data_json(out_dir, split_counts)
    plot_metrics(rows, out_dir / "plot_metrics.png", title)
    if loss_curves is not None:
        plot_loss(loss_curves, out_dir / "plot_loss.png", f"{title}: training curves")
    return text


# --------------------------------------------------------------------------- data counts


def _stem(manifest: Path) -> str:
    name = manifest.name
    for suffix in (".jsonl.gz", ".jsonl", ".json.gz", ".json"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return manifest.stem


def _read_skipped_tsv(path: Path) -> Counter:
    """Reasons of a prepare's ``<stem>.skipped.tsv`` (``id<TAB>reason<TAB>detail`` + header)."""
    out: Counter = Counter()
    with open(path, encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f):
            parts = line.rstrip("\n").split("\t")
            if n == 0 and parts[:2] == ["id", "reason"]:
                continue
            if len(parts) >= 2 and parts[1]:
                out[parts[1]] += 1
    return out


def skipped_counts(manifest: str | Path, split: str | None = None) -> tuple[Counter, list[Path]]:
    """Clips left out before ``manifest`` was evaluated, by reason, and the files listing them:

    * the prepare's ``<stem>.skipped.tsv`` next to the manifest;
    * for a recipe's validated ``<data>/cuts_<split>.jsonl.gz`` (stage 1), the prepare lists
      ``<data>/manifests/*_cuts_<split>.skipped.tsv`` and stage 1's drops
      (``<data>/stats.json``: ``<split>.dropped``).
    """
    manifest = Path(manifest)
    counts: Counter = Counter()
    files: list[Path] = []
    own = manifest.with_name(f"{_stem(manifest)}.skipped.tsv")
    candidates = [own]
    stem = _stem(manifest)
    if stem.startswith("cuts_"):
        split = split or stem[len("cuts_") :]
        candidates += sorted((manifest.parent / "manifests").glob(f"*_cuts_{split}.skipped.tsv"))
        stats = manifest.parent / "stats.json"
        if stats.is_file():
            try:
                dropped = (json.loads(stats.read_text()).get(split) or {}).get("dropped") or {}
                counts.update({str(k): int(v) for k, v in dropped.items()})
            except (ValueError, AttributeError, TypeError):
                pass
    for path in candidates:
        if path.is_file():
            counts.update(_read_skipped_tsv(path))
            files.append(path)
    return counts, files


def data_counts(
    clips: Mapping[str, int],
    manifests: Mapping[str, Iterable[str | Path]],
    unreadable: Mapping[str, int] | None = None,
) -> dict[str, dict[str, Any]]:
    """``split_counts`` for :func:`write_report`: per split ``{"clips": evaluated clips,
    "skipped": {reason: n}, "skipped_files": [...]}``, the skipped counts read next to the
    split's ``manifests`` (:func:`skipped_counts`) plus ``unreadable`` clips that failed to load
    at evaluation (reason ``unreadable_at_eval``)."""
    out: dict[str, dict[str, Any]] = {}
    for split, n in clips.items():
        skipped: Counter = Counter()
        files: list[str] = []
        for m in manifests.get(split) or []:
            counts, found = skipped_counts(m, split)
            skipped.update(counts)
            files += [str(f) for f in found]
        if unreadable and unreadable.get(split):
            skipped["unreadable_at_eval"] += int(unreadable[split])
        out[split] = {"clips": int(n), "skipped": dict(skipped), "skipped_files": files}
    return out


def _write_data_json(out_dir: Path, split_counts: Mapping[str, Mapping[str, Any]]) -> None:
    (Path(out_dir) / "data.json").write_text(
        json.dumps(split_counts, indent=1, default=str) + "\n", encoding="utf-8"
    )
