"""Supervised tagging: a classifier head on the pooled encoder output over a label vocabulary.

Labels come from the batch (``batch["labels"] = {task: [label-or-None per clip]}``, see
:func:`toolkit.data.dataset.collect_labels`). The vocabulary file (written by
``python -m toolkit.bin.label_vocab``) lists one ``task<TAB>label`` per line; a file without
TABs is the vocabulary of a single task, named by the objective's ``tasks: [name]``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from toolkit.config import ConfigError, locate
from toolkit.layers import lengths_to_mask, masked_mean
from toolkit.registry import OBJECTIVES

log = logging.getLogger(__name__)
IGNORE = -100  # cross-entropy target of clips without a (known) label


def read_label_vocab(
    path: str | Path, tasks: Sequence[str] | None = None, key: str = "objective.vocab"
) -> dict[str, list[str]]:
    """``{task: [label, ...]}`` from a vocabulary file, in file order.

    Lines are ``task<TAB>label``; blank lines are skipped. A file with no TAB at all holds the
    labels of one task, which ``tasks`` must name (exactly one). ``tasks`` (if given) selects and
    orders the tasks. Raises :class:`ConfigError` (naming ``key`` and the file) on a missing file,
    mixed formats, duplicates, or a requested task that the file lacks.
    """
    where = f"{locate(key)}{key}"
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{where}: label vocabulary {p} does not exist")
    lines = [(i, ln.strip("\r\n")) for i, ln in enumerate(p.read_text().splitlines(), 1)]
    lines = [(i, ln) for i, ln in lines if ln.strip()]
    tabbed = [("\t" in ln) for _, ln in lines]
    vocab: dict[str, list[str]] = {}
    if lines and not any(tabbed):
        if not tasks or len(tasks) != 1:
            raise ConfigError(
                f"{where}: {p} has no 'task<TAB>label' lines (a one-task vocabulary): "
                "name its task with tasks: [<task>]"
            )
        vocab[tasks[0]] = []
        rows = [(i, tasks[0], ln.strip()) for i, ln in lines]
    else:
        rows = []
        for (i, ln), has_tab in zip(lines, tabbed):
            if not has_tab:
                raise ConfigError(f"{where}: {p}:{i}: expected 'task<TAB>label', got {ln!r}")
            task, label = ln.split("\t", 1)
            rows.append((i, task.strip(), label.strip()))
    for i, task, label in rows:
        if not task or not label:
            raise ConfigError(f"{where}: {p}:{i}: empty task or label")
        labels = vocab.setdefault(task, [])
        if label in labels:
            raise ConfigError(f"{where}: {p}:{i}: duplicate label {label!r} of task {task!r}")
        labels.append(label)
    if not vocab:
        raise ConfigError(f"{where}: label vocabulary {p} is empty")
    if tasks:
        missing = [t for t in tasks if t not in vocab]
        if missing:
            raise ConfigError(
                f"{where}: task(s) {', '.join(missing)} not in {p}; it has: {', '.join(vocab)}"
            )
        vocab = {t: vocab[t] for t in tasks}
    return vocab


def write_label_vocab(vocab: dict[str, Sequence[str]], path: str | Path) -> None:
    """Write ``{task: labels}`` as ``task<TAB>label`` lines (the format of :func:`read_label_vocab`)."""
    lines = []
    for task, labels in vocab.items():
        for label in labels:
            if any(c in f"{task}{label}" for c in "\t\n\r"):
                raise ValueError(f"task/label may not contain TAB or newline: {task!r} {label!r}")
            lines.append(f"{task}\t{label}\n")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("".join(lines))


def split_labels(value: Any, separator: str | None = None) -> list[str]:
    """One clip's label value → list of labels: ``None`` → ``[]``, a list/tuple → its items, a
    string → itself, or its ``separator``-split, stripped, non-empty parts if a separator is set."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if str(v).strip()]
    value = str(value)
    parts = value.split(separator) if separator else [value]
    return [s.strip() for s in parts if s.strip()]


class AttentionPool(nn.Module):
    """Learned single-query attention pooling over valid frames: ``(B, T, D)`` → ``(B, D)``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.score = nn.Linear(dim, 1)

    def forward(self, hidden: Tensor, lens: Tensor) -> Tensor:
        mask = lengths_to_mask(lens, hidden.shape[1])
        scores = self.score(hidden).squeeze(-1).float()  # (B, T)
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
        weights = torch.softmax(scores, dim=1) * mask  # an empty clip pools to zeros
        return (weights.to(hidden.dtype)[..., None] * hidden).sum(1)


@OBJECTIVES.register("tagging")
class Tagging(nn.Module):
    """Classifier head (dropout + linear) on the pooled encoder output, over the labels of one
    or more tasks. ``multi_label: false``: softmax cross-entropy per task (one label per clip);
    ``true``: per-label binary cross-entropy (a clip may carry several labels).

    Clips without a label for a task are ignored for that task; labels not in the vocabulary are
    ignored (warned once each). The loss is the mean over the tasks labelled in the batch (0 with
    gradients when none is). Loss dict: ``loss``, ``acc`` (single-label: top-1 over labelled
    clips) or ``map`` (multi-label: mean per-clip average precision over the task's labels),
    and ``loss_<task>`` per task when there are several. Metrics are 0 in a batch without labels.
    """

    def __init__(
        self,
        encoder_dim: int,
        vocab: str,
        tasks: list[str] | None = None,
        multi_label: bool = False,
        pooling: Literal["mean", "attention"] = "mean",
        separator: str | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.vocab = read_label_vocab(vocab, tasks)
        self.tasks = list(self.vocab)
        self.label_index = {t: {lab: i for i, lab in enumerate(v)} for t, v in self.vocab.items()}
        sizes = [len(v) for v in self.vocab.values()]
        self.offsets = [sum(sizes[:i]) for i in range(len(sizes) + 1)]
        self.multi_label = multi_label
        self.separator = separator
        self.pool = AttentionPool(encoder_dim) if pooling == "attention" else None
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(encoder_dim, self.offsets[-1])
        self._warned: set[tuple[str, str]] = set()

    def pooled(self, encoder_out: Tensor, encoder_lens: Tensor) -> Tensor:
        """``(B, T, D)``, ``(B,)`` → ``(B, D)`` (mean over valid frames or attention pooling)."""
        if self.pool is None:
            return masked_mean(encoder_out, encoder_lens)
        return self.pool(encoder_out, encoder_lens)

    def classify(self, encoder_out: Tensor, encoder_lens: Tensor) -> dict[str, Tensor]:
        """Per-task logits ``{task: (B, num_labels_of_task)}``."""
        logits = self.head(self.drop(self.pooled(encoder_out, encoder_lens))).float()
        return {
            t: logits[:, self.offsets[k] : self.offsets[k + 1]] for k, t in enumerate(self.tasks)
        }

    def _indices(self, task: str, values: Sequence[Any]) -> list[list[int]]:
        """Vocabulary indices of each clip's labels (``[]``: no known label for this clip)."""
        index = self.label_index[task]
        out = []
        for value in values:
            labels = split_labels(value, self.separator if self.multi_label else None)
            if len(labels) > 1 and not self.multi_label:
                raise ValueError(
                    f"task {task!r}: a clip has {len(labels)} labels {labels}; "
                    "set multi_label: true for multi-label tasks"
                )
            known = []
            for lab in labels:
                if lab in index:
                    known.append(index[lab])
                elif (task, lab) not in self._warned:
                    self._warned.add((task, lab))
                    log.warning("tagging: label %r of task %r is not in the vocabulary", lab, task)
            out.append(known)
        return out

    def targets(self, labels: dict[str, Sequence[Any]], batch_size: int, device) -> dict:
        """Per task: ``(B,)`` class indices (``IGNORE`` where unlabelled) for single-label, or
        ``((B, n) multi-hot, (B,) bool labelled)`` for multi-label."""
        out: dict[str, Any] = {}
        for task in self.tasks:
            values = list(labels.get(task) or [None] * batch_size)
            if len(values) != batch_size:
                raise ValueError(
                    f"labels[{task!r}] has {len(values)} entries for {batch_size} clips"
                )
            idx = self._indices(task, values)
            n = len(self.vocab[task])
            if self.multi_label:
                hot = torch.zeros(batch_size, n)
                for b, ids in enumerate(idx):
                    hot[b, ids] = 1.0
                out[task] = (hot.to(device), torch.tensor([bool(i) for i in idx], device=device))
            else:
                out[task] = torch.tensor([i[0] if i else IGNORE for i in idx], device=device)
        return out

    def forward(self, encoder_out: Tensor, encoder_lens: Tensor, batch: dict) -> dict[str, Tensor]:
        logits = self.classify(encoder_out, encoder_lens)
        targets = self.targets(batch.get("labels") or {}, encoder_out.shape[0], encoder_out.device)
        zero = sum(z.sum() for z in logits.values()) * 0.0  # every parameter stays in the graph
        losses: dict[str, Tensor] = {}
        hits, count = zero.detach(), 0
        for task in self.tasks:
            z = logits[task]
            if self.multi_label:
                hot, labelled = targets[task]
                n = int(labelled.sum())
                if n:
                    losses[task] = F.binary_cross_entropy_with_logits(z[labelled], hot[labelled])
                    with torch.no_grad():
                        hits = hits + average_precision(z[labelled], hot[labelled]).sum()
            else:
                target = targets[task]
                n = int((target != IGNORE).sum())
                if n:
                    losses[task] = F.cross_entropy(z, target, ignore_index=IGNORE)
                    with torch.no_grad():
                        hits = hits + (z.argmax(1) == target).sum()
            count += n
        loss = torch.stack(list(losses.values())).mean() + zero if losses else zero
        out = {"loss": loss, "map" if self.multi_label else "acc": hits.float() / max(count, 1)}
        if len(self.tasks) > 1:
            for task in self.tasks:
                out[f"loss_{task}"] = losses.get(task, zero).detach()
        return out


def average_precision(scores: Tensor, target: Tensor) -> Tensor:
    """Per-row average precision of ``target`` (B, n) {0,1} ranked by ``scores`` (B, n) → (B,);
    0 for a row without positives."""
    order = scores.argsort(dim=1, descending=True)
    hit = target.gather(1, order)
    ranks = torch.arange(1, hit.shape[1] + 1, device=hit.device, dtype=hit.dtype)
    precision = hit.cumsum(1) / ranks
    return (precision * hit).sum(1) / hit.sum(1).clamp(min=1)
