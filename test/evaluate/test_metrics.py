"""Probe metrics: hand-computed cases, pessimistic ties, excluded classes, equality with sklearn."""

from __future__ import annotations

import math

import pytest
import torch

from toolkit.evaluate.metrics import (
    accuracy,
    average_precision,
    label_prior_map,
    majority_share,
    mean_average_precision,
    top_k_accuracy,
)


def test_average_precision_hand_computed():
    # ranking: pos, neg, pos, neg -> precision at the hits 1/1 and 2/3 -> AP = (1 + 2/3) / 2
    scores = torch.tensor([0.9, 0.8, 0.7, 0.1])
    target = torch.tensor([1, 0, 1, 0])
    assert average_precision(scores, target) == pytest.approx(100 * (1 + 2 / 3) / 2)
    # perfect and worst rankings
    assert average_precision(torch.tensor([3.0, 2.0, 1.0]), torch.tensor([1, 1, 0])) == 100.0
    worst = average_precision(torch.tensor([3.0, 2.0, 1.0]), torch.tensor([0, 0, 1]))
    assert worst == pytest.approx(100 / 3)


def test_average_precision_ties_are_one_threshold():
    # all scores equal: one threshold with precision = positive share, recall 1
    ap = average_precision(torch.zeros(5), torch.tensor([1, 0, 0, 1, 0]))
    assert ap == pytest.approx(40.0)
    # a tie between a positive and a negative at the top: precision 1/2 there, then 2/3
    ap = average_precision(torch.tensor([1.0, 1.0, 0.5, 0.0]), torch.tensor([0, 1, 1, 0]))
    assert ap == pytest.approx(100 * (0.5 * 0.5 + 0.5 * 2 / 3))


def test_average_precision_without_positive_is_nan_and_excluded():
    assert math.isnan(average_precision(torch.tensor([0.3, 0.2]), torch.tensor([0, 0])))
    scores = torch.tensor([[0.9, 0.1, 0.5], [0.2, 0.8, 0.4], [0.1, 0.3, 0.6]])
    target = torch.tensor([[1, 0, 0], [0, 1, 0], [0, 0, 0]])  # class 2 has no positive
    res = mean_average_precision(scores, target)
    assert res.num_scored == 2 and res.num_excluded == 1
    assert math.isnan(res.ap[2]) and res.map == pytest.approx(100.0)
    assert label_prior_map(target) == pytest.approx(100 / 3)  # classes 0, 1: 1 of 3 each
    with pytest.raises(ValueError, match="no class has a positive"):
        mean_average_precision(scores, torch.zeros(3, 3))
    with pytest.raises(ValueError, match="finite"):
        average_precision(torch.tensor([float("nan"), 1.0]), torch.tensor([1, 0]))


def test_accuracy_and_top_k():
    scores = torch.tensor([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])
    target = torch.tensor([1, 1, 0, -1])
    assert accuracy(scores, target) == pytest.approx(25.0)  # only row 0
    assert accuracy(torch.tensor([1, 0, 0, 2]), target) == pytest.approx(50.0)  # ids; -1 wrong
    assert top_k_accuracy(scores, target, 2) == pytest.approx(50.0)  # rows 0, 1
    assert top_k_accuracy(scores, target, 3) == pytest.approx(75.0)  # -1 never a hit
    # ties are pessimistic: constant scores are never a top-1 hit, always a top-C hit
    const = torch.zeros(4, 3)
    assert accuracy(const, torch.tensor([0, 1, 2, 0])) == 0.0
    assert top_k_accuracy(const, torch.tensor([0, 1, 2, 0]), 3) == 100.0
    assert majority_share(["a", "b", "a", "c"]) == pytest.approx(50.0)
    assert majority_share(torch.tensor([2, 2, 1])) == pytest.approx(200 / 3)
    with pytest.raises(ValueError, match="k must be"):
        top_k_accuracy(scores, target, 0)


def _random_case(seed: int, n: int = 60, c: int = 7, tied: bool = True):
    g = torch.Generator().manual_seed(seed)
    scores = torch.randn(n, c, generator=g)
    if tied:
        scores = (scores * 2).round() / 2  # many ties
    target = (torch.rand(n, c, generator=g) < 0.3).long()
    target[:, 0] = 0  # a class without positives
    return scores, target


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_sklearn(seed: int):
    sk = pytest.importorskip("sklearn.metrics", reason="sklearn comparison needs scikit-learn")
    scores, target = _random_case(seed)
    res = mean_average_precision(scores, target)
    ref = [
        100 * sk.average_precision_score(target[:, k].numpy(), scores[:, k].numpy())
        for k in range(1, scores.shape[1])
        if target[:, k].any()
    ]
    assert res.num_excluded == 1
    assert res.ap[1:].tolist() == pytest.approx(ref, abs=1e-9)
    assert res.map == pytest.approx(sum(ref) / len(ref), abs=1e-9)
    # single-label accuracy and (tie-free) top-k accuracy
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(80, 6, generator=g)
    y = torch.randint(0, 6, (80,), generator=g)
    assert accuracy(logits, y) == pytest.approx(
        100 * sk.accuracy_score(y.numpy(), logits.argmax(1).numpy())
    )
    for k in (1, 2, 3):
        expected = 100 * sk.top_k_accuracy_score(y.numpy(), logits.numpy(), k=k, labels=range(6))
        assert top_k_accuracy(logits, y, k) == pytest.approx(expected)
