"""Fixed-protocol linear probe: multinomial logistic regression on frozen features.

Protocol: standardise with train statistics, build the label vocabulary from the train labels,
train one softmax classifier per L2 strength with full-batch L-BFGS (float64, strong-Wolfe line
search, zero initialisation -- deterministic), select the L2 strength with the best dev accuracy
(ties go to the stronger regularisation) and report the test accuracy of that same model.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

DEFAULT_L2_GRID = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
_STD_EPS = 1e-8


def _encode(labels: Sequence[str], vocab: dict[str, int], device: torch.device) -> Tensor:
    """Map labels to class ids; labels outside ``vocab`` become -1 (never predicted)."""
    return torch.tensor(
        [vocab.get(str(lab), -1) for lab in labels], dtype=torch.long, device=device
    )


def _accuracy(logits: Tensor, target: Tensor) -> float:
    """Percent of rows whose argmax equals ``target`` (target -1 is always wrong)."""
    return 100.0 * (logits.argmax(dim=1) == target).double().mean().item()


def _fit(x: Tensor, y: Tensor, num_classes: int, l2: float, max_iter: int) -> tuple[Tensor, Tensor]:
    """Train ``softmax(x @ w + b)``; loss = mean cross-entropy + ``l2 * ||w||^2`` (bias free).

    Args:
        x: (N, D) standardised float64 features.
        y: (N,) class ids in ``[0, num_classes)``.

    Returns:
        ``w`` (D, C) and ``b`` (C,).
    """
    w = torch.zeros(x.shape[1], num_classes, dtype=x.dtype, device=x.device, requires_grad=True)
    b = torch.zeros(num_classes, dtype=x.dtype, device=x.device, requires_grad=True)
    opt = torch.optim.LBFGS(
        [w, b],
        lr=1.0,
        max_iter=max_iter,
        history_size=10,
        tolerance_grad=1e-9,
        tolerance_change=1e-12,
        line_search_fn="strong_wolfe",
    )

    def closure() -> Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(x @ w + b, y) + l2 * w.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return w.detach(), b.detach()


def linear_probe(
    train_x: Tensor,
    train_y: Sequence[str],
    dev_x: Tensor,
    dev_y: Sequence[str],
    test_x: Tensor,
    test_y: Sequence[str],
    l2_grid: Sequence[float] = DEFAULT_L2_GRID,
    max_iter: int = 200,
    seed: int = 0,
) -> dict:
    """Linear-probe accuracy of frozen features.

    Args:
        train_x, dev_x, test_x: (N_split, D) float features.
        train_y, dev_y, test_y: N_split string labels. Dev/test labels unseen in train count
            as errors.
        l2_grid: L2 strengths to try (penalty ``l2 * ||W||^2`` added to the mean cross-entropy).
        max_iter: L-BFGS iterations per L2 strength.
        seed: seeds torch's RNG around the fit; the fit itself is deterministic (zero init).

    Returns:
        ``{"test_acc", "dev_acc", "l2", "num_classes", "num_train", "num_test", "chance_acc"}``;
        accuracies in percent, ``chance_acc`` is the majority-class share of the test set.
    """
    splits = ((train_x, train_y, "train"), (dev_x, dev_y, "dev"), (test_x, test_y, "test"))
    for x, y, name in splits:
        if x.dim() != 2 or x.shape[0] != len(y):
            raise ValueError(
                f"{name}: expected (N, D) features and N labels, got "
                f"{tuple(x.shape)} and {len(y)} labels"
            )
        if len(y) == 0:
            raise ValueError(f"{name} split is empty")
    if not len(l2_grid):
        raise ValueError("l2_grid is empty")

    device = train_x.device
    vocab = {lab: i for i, lab in enumerate(sorted({str(lab) for lab in train_y}))}
    num_classes = len(vocab)

    tx = train_x.detach().to(device=device, dtype=torch.float64)
    mean = tx.mean(dim=0)
    std = tx.std(dim=0, unbiased=False)
    std = torch.where(std > _STD_EPS, std, torch.ones_like(std))  # constant dims: centre only

    def prep(x: Tensor) -> Tensor:
        return (x.detach().to(device=device, dtype=torch.float64) - mean) / std

    xtr, xdev, xte = prep(train_x), prep(dev_x), prep(test_x)
    ytr = _encode(train_y, vocab, device)
    ydev = _encode(dev_y, vocab, device)
    yte = _encode(test_y, vocab, device)

    best = None  # (dev_acc, l2, w, b)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        # strongest regularisation first, so that only a strictly better dev score replaces it
        for l2 in sorted((float(v) for v in l2_grid), reverse=True):
            w, b = _fit(xtr, ytr, num_classes, l2, max_iter)
            dev_acc = _accuracy(xdev @ w + b, ydev)
            if best is None or dev_acc > best[0]:
                best = (dev_acc, l2, w, b)
    dev_acc, l2, w, b = best

    majority = Counter(str(lab) for lab in test_y).most_common(1)[0][1]
    return {
        "test_acc": _accuracy(xte @ w + b, yte),
        "dev_acc": dev_acc,
        "l2": l2,
        "num_classes": num_classes,
        "num_train": len(train_y),
        "num_test": len(test_y),
        "chance_acc": 100.0 * majority / len(test_y),
    }
