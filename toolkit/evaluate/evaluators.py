"""Evaluator plugins: each turns the embeddings of one model into result rows.

An evaluator is called as ``evaluator(model_name, splits, text_fn)`` where ``splits`` maps
``train``/``dev``/``test`` to :class:`~toolkit.evaluate.embeddings.EmbeddingSet` and ``text_fn``
(``list[str] -> (M, E)`` L2-normalised) is None for models without a text tower. Rows follow
:func:`toolkit.evaluate.report.write_report`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from torch import Tensor

from toolkit.config import ConfigError
from toolkit.evaluate.embeddings import EmbeddingSet
from toolkit.evaluate.linear_probe import linear_probe
from toolkit.evaluate.retrieval import (
    caption_queries,
    label_template_task,
    retrieval_metrics,
    retrieval_rows,
)
from toolkit.evaluate.zero_shot import (
    CLASSES_SUFFIX,
    DEFAULT_TEMPLATES,
    PROMPTS_SUFFIX,
    class_embeddings,
    load_class_names,
    load_prompt_file,
    prompts_hash,
    task_prompts,
    zero_shot_accuracy,
    zero_shot_map,
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
    """Audio↔text retrieval with the model's own joint space on the ``split`` clips, every
    caption a query (AudioCaps/Clotho protocol): R@1/5/10 and mAP@10 (percent) plus ``medR`` /
    ``meanR`` (ranks, lower is better) both ways. Clips without captions are left out. When the
    captions are made from the labels (:func:`~toolkit.evaluate.retrieval.label_template_task`)
    the rows are marked ``not_meaningful`` (``n/m`` in results.md)."""

    def __init__(self, split: str = "test") -> None:
        self.split = split

    def __call__(self, model: str, splits: Splits, text_fn: TextFn | None) -> list[dict]:
        es = splits[self.split]
        if text_fn is None or es.audio_emb is None:
            return []
        keep, caps, owner = caption_queries(es.captions)
        if not keep:
            log.warning("retrieval: no %s clip has a caption; skipped", self.split)
            return []
        res = retrieval_metrics(es.audio_emb[keep], text_fn(caps), owner)
        rows = retrieval_rows(model, "retrieval", res)
        task = label_template_task(es.captions, es.labels)
        if task is not None:  # shown as n/m in results.md (the values stay in results.csv)
            note = (
                f"retrieval on the {self.split} captions, which are the same for every clip of "
                f"a {task} label (made from the labels): a caption matches many clips equally; "
                "see the linear probe and zero-shot rows"
            )
            for r in rows:
                r["not_meaningful"] = note
        return rows


def _is_multi_label(values: Sequence[Any]) -> bool:
    return any(isinstance(v, (list, tuple)) for v in values if v is not None)


def _label_list(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]


def _check_prompt_files(prompts_dir: str) -> None:
    """Parse every prompt / class-name file of ``prompts_dir`` now, so that a bad file stops
    stage 5 before any extraction."""
    folder = Path(prompts_dir)
    if not folder.is_dir():
        raise ConfigError(f"zero_shot.prompts_dir: {prompts_dir} is not a folder")
    try:
        for path in sorted(folder.glob(f"*{PROMPTS_SUFFIX}")):
            load_prompt_file(path)
        for path in sorted(folder.glob(f"*{CLASSES_SUFFIX}")):
            load_class_names(path)
    except ValueError as e:
        raise ConfigError(f"zero_shot.prompts_dir: {e}") from e


@EVALUATORS.register("zero_shot")
class ZeroShot:
    """Zero-shot classification of every label task (or of ``tasks``): class prompts → text
    embeddings (averaged over templates) → similarity with the audio embedding. Single-label
    tasks: argmax accuracy; multi-label tasks (list labels): per-class scores → macro mAP.

    Templates and class names come from ``prompts_dir`` (``<task>.prompts.txt`` else
    ``default.prompts.txt``, optional ``<task>.classes.tsv``; see
    :func:`~toolkit.evaluate.zero_shot.task_prompts`), falling back to ``templates`` (default
    :data:`~toolkit.evaluate.zero_shot.DEFAULT_TEMPLATES`) and to the raw label."""

    def __init__(
        self,
        templates: Sequence[str] | None = None,
        split: str = "test",
        prompts_dir: str | None = None,
        tasks: Sequence[str] | None = None,
    ) -> None:
        self.templates = list(templates or DEFAULT_TEMPLATES)
        bad = [t for t in self.templates if "{label}" not in t]
        if bad:
            raise ConfigError(f"zero_shot.templates: every template needs {{label}}, got {bad}")
        if prompts_dir is not None:
            _check_prompt_files(prompts_dir)
        self.split = split
        self.prompts_dir = prompts_dir
        self.tasks = list(tasks) if tasks is not None else None
        self._logged: set[str] = set()

    def __call__(self, model: str, splits: Splits, text_fn: TextFn | None) -> list[dict]:
        es = splits[self.split]
        if text_fn is None or es.audio_emb is None:
            return []
        rows = []
        tasks = self.tasks if self.tasks is not None else sorted(splits["train"].labels)
        for task in tasks:
            train_vals = splits["train"].labels.get(task, [])
            vals = es.labels.get(task, [])
            idx = [i for i, v in enumerate(vals) if v is not None]
            multi = _is_multi_label(train_vals) or _is_multi_label(vals)
            classes = sorted({lab for v in train_vals if v is not None for lab in _label_list(v)})
            if len(classes) < 2 or not idx:
                log.info(
                    "zero_shot: task %s has < 2 train classes or no %s labels; skipped",
                    task,
                    self.split,
                )
                continue
            prompts = task_prompts(task, self.prompts_dir, self.templates)
            if task not in self._logged:
                self._logged.add(task)
                log.info(
                    "zero_shot[%s]: %d templates, %d/%d classes renamed, from %s%s",
                    task,
                    len(prompts.templates),
                    sum(c in prompts.class_names for c in classes),
                    len(classes),
                    prompts.source,
                    f" (sha1 {prompts.digest})" if prompts.digest else "",
                )
            class_emb = class_embeddings(text_fn, task, classes, prompts)
            audio = es.audio_emb[idx]
            if multi:
                targets = [_label_list(vals[i]) for i in idx]
                if not any(lab in classes for t in targets for lab in t):
                    log.info("zero_shot: task %s has no known %s label; skipped", task, self.split)
                    continue
                res = zero_shot_map(audio, class_emb, targets, classes)
                metric, value, chance = "mAP", res["mAP"], res["chance_map"]
            else:
                res = zero_shot_accuracy(audio, class_emb, [str(vals[i]) for i in idx], classes)
                metric, value, chance = "acc", res["acc"], res["chance_acc"]
            rows.append(
                {
                    "model": model,
                    "group": "zero-shot",
                    "task": task,
                    "metric": metric,
                    "value": value,
                    "chance": chance,
                    "prompts_hash": prompts_hash(
                        prompts.templates, {c: prompts.name_of(c) for c in classes}
                    ),
                }
            )
        return rows
