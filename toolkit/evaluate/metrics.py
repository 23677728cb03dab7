"""Classification metrics for probes: accuracy, top-k accuracy, average precision and macro mAP.

Every function returns a percentage (0-100, higher is better), like the rest of
:mod:`toolkit.evaluate`. Single-label targets are class ids ``(N,)`` where ``-1`` marks a label
the classifier cannot predict (unseen in train): such a row is always wrong. Multi-label targets
are ``(N, C)`` 0/1 matrices.

Ties are pessimistic, as in :mod:`toolkit.evaluate.retrieval`: a true class is within the top
``k`` only if at most ``k - 1`` other classes score ``>=`` it (constant scores give 0 %
accuracy, not the share of class 0). Average precision treats tied scores as one threshold,
exactly like ``sklearn.metrics.average_precision_score``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Iterable
from dataclasses import dataclass

import torch
from torch import Tensor


def _check_rows(scores: Tensor, target: Tensor, what: str) -> None:
    if scores.shape[0] != target.shape[0]:
        raise ValueError(f"{what}: {scores.shape[0]} score rows for {target.shape[0]} targets")
    if scores.shape[0] == 0:
        raise ValueError(f"{what}: no rows")


def accuracy(scores: Tensor, target: Tensor) -> float:
    """Percent of rows classified correctly.

    Args:
        scores: ``(N, C)`` class scores (a hit needs the true class strictly above every other
            class) or ``(N,)`` predicted class ids.
        target: ``(N,)`` true class ids; ``-1`` (label unknown to the classifier) is always wrong.
    """
    if scores.dim() == 1:
        _check_rows(scores, target, "accuracy")
        return 100.0 * (scores.long() == target.long()).double().mean().item()
    return top_k_accuracy(scores, target, 1)


def top_k_accuracy(scores: Tensor, target: Tensor, k: int = 5) -> float:
    """Percent of rows whose true class is among the ``k`` best-scored classes (ties pessimistic:
    rank = number of classes scoring ``>=`` the true one).

    Args:
        scores: ``(N, C)`` class scores.
        target: ``(N,)`` true class ids in ``[0, C)`` or ``-1`` (always a miss).
        k: ``>= 1``; ``k >= C`` counts every known label as a hit.
    """
    if scores.dim() != 2 or target.dim() != 1:
        raise ValueError(
            f"top_k_accuracy: expected (N, C) scores and (N,) targets, got "
            f"{tuple(scores.shape)} and {tuple(target.shape)}"
        )
    _check_rows(scores, target, "top_k_accuracy")
    if k < 1:
        raise ValueError(f"top_k_accuracy: k must be >= 1, got {k}")
    target = target.long().to(scores.device)
    known = (target >= 0) & (target < scores.shape[1])
    true = scores.gather(1, target.clamp(0, scores.shape[1] - 1)[:, None])  # (N, 1)
    rank = (scores >= true).sum(dim=1)  # includes the true class itself
    hit = known & (rank <= k)
    return 100.0 * hit.double().mean().item()


def average_precision(scores: Tensor, target: Tensor) -> float:
    """Average precision of one class, in percent: ``sum_n (R_n - R_{n-1}) P_n`` over the
    distinct score thresholds in decreasing order (equal scores form one threshold), i.e.
    ``100 * sklearn.metrics.average_precision_score(target, scores)``.

    Args:
        scores: ``(N,)`` finite scores, higher = more likely positive.
        target: ``(N,)`` 0/1 (or bool) relevance.

    Returns:
        AP in percent, or NaN when ``target`` has no positive (AP is undefined).
    """
    if scores.dim() != 1 or target.shape != scores.shape:
        raise ValueError(
            f"average_precision: expected (N,) scores and targets, got "
            f"{tuple(scores.shape)} and {tuple(target.shape)}"
        )
    _check_rows(scores, target, "average_precision")
    s = scores.detach().double().cpu()
    if not bool(torch.isfinite(s).all()):
        raise ValueError("average_precision: scores must be finite")
    t = target.detach().cpu() > 0
    num_pos = int(t.sum())
    if num_pos == 0:
        return math.nan
    order = torch.argsort(s, descending=True, stable=True)
    s, t = s[order], t[order]
    tp = torch.cumsum(t, 0).double()
    seen = torch.arange(1, len(t) + 1, dtype=torch.float64)
    last = torch.ones_like(t)  # last position of each group of equal scores
    last[:-1] = s[1:] != s[:-1]
    precision = (tp / seen)[last]
    recall = tp[last] / num_pos
    gain = torch.diff(recall, prepend=recall.new_zeros(1))
    return 100.0 * float((gain * precision).sum())


@dataclass
class MAPResult:
    """Macro mAP over the classes that have at least one positive."""

    map: float  # percent, mean AP of the scored classes
    ap: Tensor  # (C,) float64 AP per class in percent; NaN for an excluded class
    num_scored: int  # classes with >= 1 positive (they make up ``map``)
    num_excluded: int  # classes without any positive: AP undefined, left out of the mean


def mean_average_precision(scores: Tensor, target: Tensor) -> MAPResult:
    """Macro-averaged AP (:func:`average_precision` per class) of multi-label scores.

    Classes without a positive row in ``target`` have no defined AP: they are excluded from the
    mean and counted in ``num_excluded`` (sklearn's ``average="macro"`` would count them as 0).

    Args:
        scores: ``(N, C)`` finite scores (logits or probabilities; only the ranking matters).
        target: ``(N, C)`` 0/1 relevance.

    Raises:
        ValueError: on shape mismatch or when no class has a positive.
    """
    if scores.dim() != 2 or target.shape != scores.shape:
        raise ValueError(
            f"mean_average_precision: expected equal (N, C) scores and targets, got "
            f"{tuple(scores.shape)} and {tuple(target.shape)}"
        )
    ap = torch.tensor(
        [average_precision(scores[:, c], target[:, c]) for c in range(scores.shape[1])],
        dtype=torch.float64,
    )
    valid = ~torch.isnan(ap)
    if not bool(valid.any()):
        raise ValueError("mean_average_precision: no class has a positive example")
    return MAPResult(
        map=float(ap[valid].mean()),
        ap=ap,
        num_scored=int(valid.sum()),
        num_excluded=int((~valid).sum()),
    )


def label_prior_map(target: Tensor) -> float:
    """Chance level of :func:`mean_average_precision`: the mAP of a constant score, i.e. the mean
    positive share (percent) of the classes with at least one positive.

    Args:
        target: ``(N, C)`` 0/1 relevance.
    """
    if target.dim() != 2 or target.shape[0] == 0:
        raise ValueError(f"label_prior_map: expected non-empty (N, C), got {tuple(target.shape)}")
    prior = (target > 0).double().mean(dim=0)
    valid = prior > 0
    if not bool(valid.any()):
        raise ValueError("label_prior_map: no class has a positive example")
    return 100.0 * float(prior[valid].mean())


def majority_share(labels: Iterable[Hashable]) -> float:
    """Chance level of :func:`accuracy`: percent of rows carrying the most frequent label."""
    counts = Counter(labels.tolist() if isinstance(labels, Tensor) else labels)
    total = sum(counts.values())
    if not total:
        raise ValueError("majority_share: no labels")
    return 100.0 * counts.most_common(1)[0][1] / total
