"""Cross-validation over official folds (ESC-50: 5, UrbanSound8K: 10) for stage-5 evaluators.

Each fold manifest is embedded once; round ``k`` tests on fold ``k``, selects hyper-parameters on
fold ``k+1`` (cyclically) and trains on the others. Result rows are averaged over the rounds
(``value`` = mean, ``std`` = sample std, ``folds`` = number of rounds).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

import torch

from toolkit.evaluate.embeddings import EmbeddingSet


def concat_sets(sets: Sequence[EmbeddingSet]) -> EmbeddingSet:
    """One EmbeddingSet with the clips of ``sets`` in order (labels/extra merged by clip)."""
    if not sets:
        raise ValueError("no embedding sets to concatenate")
    ids = [i for s in sets for i in s.cut_ids]
    tasks = sorted({t for s in sets for t in s.labels})
    labels = {t: [v for s in sets for v in s.labels.get(t, [None] * len(s.cut_ids))] for t in tasks}
    joint = [s.audio_emb for s in sets]
    extra: dict[str, Any] = {}
    for key in sorted({k for s in sets for k in s.extra}):
        if all(key in s.extra for s in sets):
            extra[key] = [x for s in sets for x in s.extra[key]]
    return EmbeddingSet(
        cut_ids=ids,
        pooled=torch.cat([s.pooled for s in sets]),
        audio_emb=torch.cat(joint) if all(j is not None for j in joint) else None,
        labels=labels,
        captions=[c for s in sets for c in s.captions],
        num_skipped=sum(s.num_skipped for s in sets),
        extra=extra,
    )


def fold_splits(sets: Sequence[EmbeddingSet], k: int) -> dict[str, EmbeddingSet]:
    """Round ``k``: test = fold k, dev = fold k+1 (mod K), train = the other folds (K >= 3)."""
    n = len(sets)
    if n < 3:
        raise ValueError(f"cross-validation needs >= 3 folds, got {n}")
    dev = (k + 1) % n
    return {
        "train": concat_sets([s for j, s in enumerate(sets) if j not in (k, dev)]),
        "dev": sets[dev],
        "test": sets[k],
    }


def average_rounds(rounds: Sequence[list[dict]]) -> list[dict]:
    """Rows averaged over cross-validation rounds, keyed by (model, group, task, metric), in
    first-appearance order; a metric missing (None) in a round is averaged over the others."""
    order: list[tuple] = []
    acc: dict[tuple, list[dict]] = {}
    for rows in rounds:
        for r in rows:
            key = (r["model"], r["group"], r["task"], r["metric"])
            if key not in acc:
                order.append(key)
                acc[key] = []
            acc[key].append(r)
    out = []
    for key in order:
        rs = acc[key]
        vals = [float(r["value"]) for r in rs if r["value"] is not None]
        chances = [float(r["chance"]) for r in rs if r.get("chance") is not None]
        row = {k: v for k, v in rs[0].items() if k not in ("value", "chance", "std")}
        row["value"] = statistics.fmean(vals) if vals else None
        row["chance"] = statistics.fmean(chances) if chances else None
        row["std"] = statistics.stdev(vals) if len(vals) > 1 else None
        row["folds"] = len(vals)
        out.append(row)
    return out
