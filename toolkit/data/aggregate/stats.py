"""Statistics of an aggregated split: per source and per domain, written as Markdown/CSV/plots.

:class:`SplitStats` accumulates in a streaming way (counters only; caption lengths are kept as
a histogram, so the median is exact at O(distinct lengths) memory; the vocabulary is a set of
folded tokens per source).
"""

from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from toolkit.data.aggregate.text import fold_caption
from toolkit.data.cuts import CAPTION_STYLES

# the clips/captions each filter of the aggregation removed (counted, in COLUMNS' order)
FILTER_COUNTS = (
    "leaked",
    "merged_away",
    "no_caption",
    "dup_exact",
    "dup_folded",
    "dup_jaccard",
    "label_conflicts",
)

COLUMNS = (
    "group",
    "name",
    "clips_in",
    "hours_in",
    "captions_in",
    "clips",
    "hours",
    "captions",
    "captions_per_clip",
    "words_mean",
    "words_median",
    "vocab",
    *FILTER_COUNTS,
    *(f"style_{s}" for s in CAPTION_STYLES),
)

COUNT_KEYS = ("clips_in", "captions_in", *FILTER_COUNTS)


def hist_mean_median(hist: Counter) -> tuple[float, float]:
    """Mean and median of the values of a ``{value: count}`` histogram (0, 0 when empty)."""
    n = sum(hist.values())
    if not n:
        return 0.0, 0.0
    mean = sum(v * c for v, c in hist.items()) / n
    items = sorted(hist.items())

    def kth(k: int) -> int:  # 0-based k-th smallest value
        acc = 0
        for v, c in items:
            acc += c
            if acc > k:
                return v
        return items[-1][0]

    median = kth(n // 2) if n % 2 else (kth(n // 2 - 1) + kth(n // 2)) / 2
    return float(mean), float(median)


class _Group:
    def __init__(self) -> None:
        self.counts: Counter = Counter()
        self.hours_in = 0.0
        self.hours = 0.0
        self.words: Counter = Counter()
        self.styles: Counter = Counter()
        self.vocab: set[str] = set()


class SplitStats:
    """Accumulates the statistics of one split (see :data:`COLUMNS` for what is reported)."""

    def __init__(self, split: str) -> None:
        self.split = split
        self.sources: dict[str, _Group] = defaultdict(_Group)
        self.domains: dict[str, _Group] = defaultdict(_Group)
        self.words_by_style: dict[str, Counter] = defaultdict(Counter)

    def add_input(self, source: str, duration: float, num_captions: int) -> None:
        """One input cut (before any filtering)."""
        g = self.sources[source]
        g.counts["clips_in"] += 1
        g.counts["captions_in"] += num_captions
        g.hours_in += duration / 3600.0

    def count(self, source: str, key: str, n: int = 1) -> None:
        """Add ``n`` to counter ``key`` (``leaked``, ``merged_away``, ``dup_exact``, ...)."""
        self.sources[source].counts[key] += n

    def add_output(
        self,
        source: str,
        domain: str,
        duration: float,
        captions: Sequence[str],
        styles: Sequence[str],
    ) -> None:
        """One output cut (after merging, normalisation and deduplication)."""
        for g in (self.sources[source], self.domains[domain]):
            g.counts["clips"] += 1
            g.counts["captions"] += len(captions)
            g.hours += duration / 3600.0
            g.styles.update(styles)
        for cap, style in zip(captions, styles, strict=True):
            tokens = fold_caption(cap).split()
            for g in (self.sources[source], self.domains[domain]):
                g.words[len(tokens)] += 1
                g.vocab.update(tokens)
            self.words_by_style[style][len(tokens)] += 1

    def _row(self, group: str, name: str, g: _Group, with_input: bool) -> dict[str, Any]:
        mean, median = hist_mean_median(g.words)
        clips = g.counts["clips"]
        row: dict[str, Any] = {c: "" for c in COLUMNS}
        row.update(
            group=group,
            name=name,
            clips=clips,
            hours=round(g.hours, 4),
            captions=g.counts["captions"],
            captions_per_clip=round(g.counts["captions"] / clips, 3) if clips else 0.0,
            words_mean=round(mean, 3),
            words_median=median,
            vocab=len(g.vocab),
            **{f"style_{s}": g.styles.get(s, 0) for s in CAPTION_STYLES},
        )
        if with_input:
            row["hours_in"] = round(g.hours_in, 4)
            row.update({key: g.counts.get(key, 0) for key in COUNT_KEYS})
        return row

    def rows(self) -> list[dict[str, Any]]:
        """One row per source, per domain, and a ``total`` row."""
        out = [self._row("source", s, g, True) for s, g in self.sources.items()]
        out += [self._row("domain", d, g, False) for d, g in sorted(self.domains.items())]
        total = _Group()
        for g in self.sources.values():
            total.counts.update(g.counts)
            total.hours_in += g.hours_in
            total.hours += g.hours
            total.words.update(g.words)
            total.styles.update(g.styles)
            total.vocab |= g.vocab
        out.append(self._row("total", "total", total, True))
        return out

    def to_csv(self, path: Path) -> None:
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(COLUMNS))
            w.writeheader()
            w.writerows(self.rows())

    def table(self) -> str:
        """A compact Markdown table (per source, per domain, total)."""
        cols = ("group", "name", "clips_in", "clips", "hours", "captions", "captions_per_clip")
        cols += ("words_mean", "words_median", "vocab", "leaked", "merged_away")
        rows = self.rows()
        buf = io.StringIO()
        buf.write("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n")
        for r in rows:
            buf.write("| " + " | ".join(str(r[c]) for c in cols) + " |\n")
        return buf.getvalue()

    def markdown(self, extra: dict[str, Any] | None = None) -> str:
        rows = self.rows()
        total = rows[-1]
        lines = [f"# Aggregated corpus: {self.split}", "", self.table()]
        lines += ["## Caption styles", "", "| style | captions | words mean | words median |"]
        lines += ["|---|---|---|---|"]
        for style, hist in sorted(self.words_by_style.items()):
            mean, median = hist_mean_median(hist)
            lines.append(f"| {style} | {sum(hist.values())} | {mean:.2f} | {median:g} |")
        lines += ["", "## Filtering", ""]
        lines.append(
            f"- input: {total['clips_in']} clips, {total['hours_in']} h, "
            f"{total['captions_in']} captions"
        )
        lines.append(f"- dropped as evaluation leakage: {total['leaked']} clips")
        lines.append(f"- merged into a duplicate of another source: {total['merged_away']} clips")
        lines.append(f"- dropped without a caption: {total['no_caption']} clips")
        lines.append(
            f"- captions removed: exact {total['dup_exact']}, folded {total['dup_folded']}, "
            f"jaccard {total['dup_jaccard']}"
        )
        lines.append(
            f"- output: {total['clips']} clips, {total['hours']} h, {total['captions']} captions"
        )
        for key, value in (extra or {}).items():
            lines.append(f"- {key}: {value}")
        return "\n".join(lines) + "\n"

    def plots(self, out_dir: Path) -> list[Path]:
        """``hours_per_source_<split>.png`` and ``caption_length_<split>.png`` (per style)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        paths = []
        names = list(self.sources)
        fig, ax = plt.subplots(figsize=(max(4.0, 0.6 * len(names) + 2), 3.5))
        ax.bar(names, [self.sources[n].hours for n in names], color="tab:blue")
        ax.set_ylabel("hours")
        ax.set_title(f"{self.split}: hours per source")
        ax.tick_params(axis="x", rotation=45)
        fig.tight_layout()
        paths.append(out_dir / f"hours_per_source_{self.split}.png")
        fig.savefig(paths[-1], dpi=100)
        plt.close(fig)

        fig, ax = plt.subplots(figsize=(5, 3.5))
        for style, hist in sorted(self.words_by_style.items()):
            xs = sorted(hist)
            ax.step(xs, [hist[x] for x in xs], where="mid", label=style)
        ax.set_xlabel("caption length (words)")
        ax.set_ylabel("captions")
        ax.set_title(f"{self.split}: caption length per style")
        if self.words_by_style:
            ax.legend()
        fig.tight_layout()
        paths.append(out_dir / f"caption_length_{self.split}.png")
        fig.savefig(paths[-1], dpi=100)
        plt.close(fig)
        return paths

    def write(self, out_dir: Path, extra: dict[str, Any] | None = None) -> dict[str, Path]:
        """Write ``stats_<split>.md``, ``stats_<split>.csv`` and the plots under ``out_dir``."""
        out_dir.mkdir(parents=True, exist_ok=True)
        md = out_dir / f"stats_{self.split}.md"
        md.write_text(self.markdown(extra))
        csv_path = out_dir / f"stats_{self.split}.csv"
        self.to_csv(csv_path)
        hours_png, length_png = self.plots(out_dir)
        return {"markdown": md, "csv": csv_path, "hours_plot": hours_png, "length_plot": length_png}
