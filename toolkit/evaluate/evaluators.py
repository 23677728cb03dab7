"""Evaluator plugins: each turns the embeddings of one model into result rows.

An evaluator is called as ``evaluator(model_name, splits, text_fn)`` where ``splits`` maps
``train``/``dev``/``test`` to :class:`~toolkit.evaluate.embeddings.EmbeddingSet` and ``text_fn``
(``list[str] -> (M, E)`` L2-normalised) is None for models without a text tower. Rows follow
:func:`toolkit.evaluate.report.write_report`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from toolkit.evaluate.embeddings import EmbeddingSet
from toolkit.evaluate.linear_probe import linear_probe
from toolkit.evaluate.retrieval import retrieval_metrics
from toolkit.evaluate.zero_shot import (
    DEFAULT_TEMPLATES,
    average_class_embeddings,
    build_prompts,
    zero_shot_accuracy,
)
from toolkit.registry import EVALUATORS

log = logging.getLogger(__name__)
TextFn = Callable[[list[str]], Tensor]
Splits = dict[str, EmbeddingSet]


def _labelled(es: EmbeddingSet, task: str) -> tuple[Tensor, list[str]]:
    vals = es.labels.get(task, [])
    idx = [i for i, v in enumerate(vals) if v is not None]
    return es.pooled[idx], [str(vals[i]) for i in idx]


@EVALUATORS.register("linear_probe")
class LinearProbe:
    """Linear probe on pooled clip vectors for every label task of the train split: standardise,
    L2-regularised logistic regression, regularisation picked on dev, test accuracy reported."""

    def __init__(
        self, l2_grid: Sequence[float] = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1), max_iter: int = 200
    ) -> None:
        self.l2_grid = list(l2_grid)
        self.max_iter = max_iter

    def __call__(self, model: str, splits: Splits, text_fn: TextFn | None) -> list[dict]:
        rows = []
        for task in sorted(splits["train"].labels):
            tr, dv, te = (_labelled(splits[s], task) for s in ("train", "dev", "test"))
            if len(set(tr[1])) < 2 or not dv[1] or not te[1]:
                log.warning("linear probe: task %s has too few labelled clips; skipped", task)
                continue
            res = linear_probe(*tr, *dv, *te, l2_grid=self.l2_grid, max_iter=self.max_iter)
            rows.append(
                {
                    "model": model,
                    "group": "linear probe (mean pool)",
                    "task": task,
                    "metric": "acc",
                    "value": res["test_acc"],
                    "chance": res["chance_acc"],
                }
            )
        return rows


@EVALUATORS.register("retrieval")
class Retrieval:
    """Audio↔text retrieval on the test split: R@1/5/10 and mAP@10 both ways, every caption."""

    def __init__(self, split: str = "test") -> None:
        self.split = split

    def __call__(self, model: str, splits: Splits, text_fn: TextFn | None) -> list[dict]:
        es = splits[self.split]
        if text_fn is None or es.audio_emb is None:
            return []
        caps, owner = [], []
        for i, cs in enumerate(es.captions):
            caps.extend(cs)
            owner.extend([i] * len(cs))
        res = retrieval_metrics(es.audio_emb, text_fn(caps), torch.tensor(owner))
        rows = []
        for direction, name in (("a2t", "audio→text"), ("t2a", "text→audio")):
            for metric in ("R@1", "R@5", "R@10", "mAP@10"):
                chance = res.get(f"{direction}_R@1_chance") if metric == "R@1" else None
                rows.append(
                    {
                        "model": model,
                        "group": "retrieval",
                        "task": name,
                        "metric": metric,
                        "value": res[f"{direction}_{metric}"],
                        "chance": chance,
                    }
                )
        return rows


@EVALUATORS.register("zero_shot")
class ZeroShot:
    """Zero-shot classification of every label task: class prompts → text embeddings → argmax."""

    def __init__(self, templates: Sequence[str] | None = None, split: str = "test") -> None:
        self.templates = list(templates or DEFAULT_TEMPLATES)
        self.split = split

    def __call__(self, model: str, splits: Splits, text_fn: TextFn | None) -> list[dict]:
        es = splits[self.split]
        if text_fn is None or es.audio_emb is None:
            return []
        rows = []
        for task in sorted(splits["train"].labels):
            vals = es.labels.get(task, [])
            idx = [i for i, v in enumerate(vals) if v is not None]
            classes = sorted({str(v) for v in splits["train"].labels[task] if v is not None})
            if len(classes) < 2 or not idx:
                continue
            prompts = [p for c in classes for p in build_prompts(task, c, self.templates)]
            class_emb = average_class_embeddings(text_fn(prompts), len(self.templates))
            res = zero_shot_accuracy(
                es.audio_emb[idx], class_emb, [str(vals[i]) for i in idx], classes
            )
            rows.append(
                {
                    "model": model,
                    "group": "zero-shot",
                    "task": task,
                    "metric": "acc",
                    "value": res["acc"],
                    "chance": res["chance_acc"],
                }
            )
        return rows
