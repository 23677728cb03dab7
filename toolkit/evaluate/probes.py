"""The ``probe`` evaluator: mean- and attention-pooling probes trained on cached frames.

For every label task of the train split (or the ``tasks`` listed), heads of
:mod:`toolkit.evaluate.heads.probe` are trained on the train split's frame-level encoder outputs
(``extra["frames"]``; the encoder is frozen and never run again), the lr is chosen on dev and
the test score is reported: accuracy for single-label tasks, macro mAP for multi-label tasks
(a task is multi-label when its train labels are lists). See docs/evaluation_probes.md.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import Tensor

from toolkit.config import ConfigError
from toolkit.evaluate.embeddings import EmbeddingSet
from toolkit.evaluate.heads.probe import (
    DEFAULT_LR_GRID,
    POOLINGS,
    ProbeResult,
    fit_probe,
    prepare_splits,
)
from toolkit.evaluate.metrics import majority_share
from toolkit.registry import EVALUATORS

log = logging.getLogger(__name__)
Splits = dict[str, EmbeddingSet]
SPLITS = ("train", "dev", "test")


def probe_group(pooling: str) -> str:
    """Report group of a pooling, e.g. ``probe (attention pool)``."""
    return f"probe ({pooling} pool)"


def is_multi_label(values: Sequence[Any]) -> bool:
    """A task is multi-label when any of its (non-None) labels is a list or tuple."""
    return any(isinstance(v, (list, tuple)) for v in values if v is not None)


def _as_set(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]


def encode_labels(
    values: Sequence[Any], vocab: dict[str, int], multi_label: bool
) -> tuple[Tensor, int]:
    """Labels → targets, and the number of label occurrences outside ``vocab``.

    Single-label: ``(N,)`` long class ids, ``-1`` for a label outside ``vocab`` (always wrong).
    Multi-label: ``(N, C)`` float multi-hot (a bare string counts as a one-element list; labels
    outside ``vocab`` are dropped, since no head scores them).
    """
    if not multi_label:
        ids = [vocab.get(str(v), -1) for v in values]
        return torch.tensor(ids, dtype=torch.long), sum(i < 0 for i in ids)
    out = torch.zeros(len(values), len(vocab))
    unknown = 0
    for row, v in enumerate(values):
        for lab in _as_set(v):
            if lab in vocab:
                out[row, vocab[lab]] = 1.0
            else:
                unknown += 1
    return out, unknown


def _frames(es: EmbeddingSet, use_pooled: bool) -> list[Tensor]:
    """Per-clip ``(T_i, D)`` frames, or each pooled vector as a single frame."""
    return [p[None] for p in es.pooled] if use_pooled else list(es.extra["frames"])


@EVALUATORS.register("probe")
class Probe:
    """Probes on frozen frame-level outputs: for every task × ``poolings`` entry, heads trained
    with AdamW for ``steps`` on the train split (``seeds`` repeats), lr chosen on dev from
    ``lr_grid``, test accuracy (single-label) or macro mAP (multi-label) in percent, mean over
    seeds (``std`` added to the row when there are several seeds)."""

    needs = frozenset({"frames"})

    def __init__(
        self,
        poolings: Sequence[Literal["mean", "attention"]] = ("mean", "attention"),
        tasks: Sequence[str] | None = None,
        lr_grid: Sequence[float] = DEFAULT_LR_GRID,
        steps: int = 300,
        batch_size: int = 64,
        weight_decay: float = 0.01,
        seeds: Sequence[int] = (0,),
        heads: int = 4,
        pooled_fallback: bool = True,
        device: Literal["cpu", "cuda", "auto"] = "cpu",
    ) -> None:
        self.poolings = list(dict.fromkeys(poolings))
        bad = [p for p in self.poolings if p not in POOLINGS]
        if bad or not self.poolings:
            raise ConfigError(f"probe.poolings: unknown or empty {bad}; known: {POOLINGS}")
        if not lr_grid or any(lr <= 0 for lr in lr_grid):
            raise ConfigError(f"probe.lr_grid: needs positive learning rates, got {lr_grid}")
        if steps < 1 or batch_size < 1 or heads < 1:
            raise ConfigError("probe: steps, batch_size and heads must be >= 1")
        if weight_decay < 0:
            raise ConfigError(f"probe.weight_decay: must be >= 0, got {weight_decay}")
        if not seeds or len(set(seeds)) != len(seeds):
            raise ConfigError(f"probe.seeds: needs distinct seeds, got {seeds}")
        self.tasks = None if tasks is None else list(tasks)
        self.lr_grid = [float(v) for v in lr_grid]
        self.steps, self.batch_size, self.weight_decay = steps, batch_size, weight_decay
        self.seeds, self.heads = list(seeds), heads
        self.pooled_fallback = pooled_fallback
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = device

    def _row(self, model: str, task: str, res: ProbeResult, chance: float) -> dict:
        row = {
            "model": model,
            "group": probe_group(res.pooling),
            "task": task,
            "metric": res.metric,
            "value": res.mean,
            "chance": chance,
        }
        if res.std is not None:
            row["std"] = res.std
        return row

    def __call__(self, model: str, splits: Splits, text_fn: Any = None) -> list[dict]:
        have_frames = all(splits[s].extra.get("frames") is not None for s in SPLITS)
        poolings = self.poolings
        if not have_frames:
            if not self.pooled_fallback or "mean" not in poolings:
                log.info("probe: %s has no frame-level outputs; skipped", model)
                return []
            poolings = ["mean"]
            log.info(
                "probe: %s has no frame-level outputs; mean probe on its pooled vectors", model
            )
        train_labels = splits["train"].labels
        tasks = self.tasks if self.tasks is not None else sorted(train_labels)
        rows = []
        for task in tasks:
            if task not in train_labels:
                log.warning("probe: task %s has no labels in the train split; skipped", task)
                continue
            rows += self._task(model, task, splits, poolings, not have_frames)
        return rows

    def _task(
        self, model: str, task: str, splits: Splits, poolings: list[str], use_pooled: bool
    ) -> list[dict]:
        idx, vals = {}, {}
        for s in SPLITS:
            labels = splits[s].labels.get(task, [])
            idx[s] = [i for i, v in enumerate(labels) if v is not None]
            vals[s] = [labels[i] for i in idx[s]]
        multi = is_multi_label(vals["train"])
        if multi:
            vocab_set = {lab for v in vals["train"] for lab in _as_set(v)}
        else:
            vocab_set = {str(v) for v in vals["train"]}
        vocab = {lab: i for i, lab in enumerate(sorted(vocab_set))}
        targets = {}
        for s in SPLITS:
            targets[s], unknown = encode_labels(vals[s], vocab, multi)
            if unknown and s != "train":
                what = "dropped" if multi else "counted wrong"
                log.warning("probe: %s/%s: %d labels unseen in train (%s)", task, s, unknown, what)
        usable = (
            len(vocab) >= 1 and all(bool(targets[s].sum(0).gt(0).any()) for s in ("dev", "test"))
            if multi
            else len(vocab) >= 2 and all(idx[s] for s in ("dev", "test"))
        )
        if not usable:
            log.warning("probe: task %s has too few labelled clips or classes; skipped", task)
            return []
        frames = {s: _frames(splits[s], use_pooled) for s in SPLITS}
        data = prepare_splits(
            *([frames[s][i] for i in idx[s]] for s in SPLITS),
            batch_size=self.batch_size,
            device=self.device,
        )
        chance = None if multi else majority_share(str(v) for v in vals["test"])
        rows = []
        for pooling in poolings:
            res = fit_probe(
                pooling,
                data,
                targets["train"],
                targets["dev"],
                targets["test"],
                num_classes=len(vocab),
                lr_grid=self.lr_grid,
                steps=self.steps,
                batch_size=self.batch_size,
                weight_decay=self.weight_decay,
                seeds=self.seeds,
                heads=self.heads,
            )
            dev = {lr: round(sum(v) / len(v), 2) for lr, v in res.dev_by_lr.items()}
            log.info(
                "probe[%s] %s %s: %d train / %d test clips, %d classes, dev %s by lr %s → lr %g, "
                "test %s %.2f%s (chance %.2f)%s; %.1f s",
                model,
                task,
                pooling,
                res.num_train,
                res.num_test,
                res.num_classes,
                res.metric,
                dev,
                res.lr,
                res.metric,
                res.mean,
                "" if res.std is None else f" ± {res.std:.2f}",
                res.chance if chance is None else chance,
                f", {res.excluded_test_classes} test classes without positives excluded"
                if res.excluded_test_classes
                else "",
                res.seconds,
            )
            rows.append(self._row(model, task, res, res.chance if chance is None else chance))
        return rows
