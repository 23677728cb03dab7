import pytest
import torch

from toolkit.evaluate.linear_probe import linear_probe


def _blobs(n: int, num_classes: int = 3, dim: int = 16, sep: float = 8.0, seed: int = 0):
    """Well separated Gaussian blobs with string labels."""
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(num_classes, dim, generator=torch.Generator().manual_seed(123)) * sep
    y = torch.arange(n) % num_classes
    x = centers[y] + torch.randn(n, dim, generator=g)
    return x, [f"class{i}" for i in y.tolist()]


def _splits(**kw):
    return _blobs(150, seed=1, **kw), _blobs(60, seed=2, **kw), _blobs(90, seed=3, **kw)


def test_separable_data_is_perfect():
    (xtr, ytr), (xdv, ydv), (xte, yte) = _splits()
    out = linear_probe(xtr, ytr, xdv, ydv, xte, yte)
    assert out["test_acc"] == pytest.approx(100.0)
    assert out["dev_acc"] == pytest.approx(100.0)
    assert out["num_classes"] == 3
    assert out["num_train"] == 150 and out["num_test"] == 90
    assert out["chance_acc"] == pytest.approx(100.0 / 3)
    assert set(out) == {
        "test_acc",
        "dev_acc",
        "l2",
        "num_classes",
        "num_train",
        "num_test",
        "chance_acc",
    }


def test_random_labels_near_chance():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1200, 32, generator=g)
    y = [f"c{i}" for i in torch.randint(0, 4, (1200,), generator=g).tolist()]
    out = linear_probe(x[:600], y[:600], x[600:900], y[600:900], x[900:], y[900:])
    assert abs(out["test_acc"] - 25.0) < 12.0
    assert out["chance_acc"] >= 25.0


def test_picks_l2_by_dev_accuracy_and_ties_go_to_stronger():
    (xtr, ytr), (xdv, ydv), (xte, yte) = _splits()
    # imbalanced train set: a huge L2 collapses the weights, the (unpenalised) bias then
    # predicts the majority class everywhere -> dev acc 33%
    keep = [i for i, lab in enumerate(ytr) if lab == "class0" or i % 5 == 0]
    xtr_imb, ytr_imb = xtr[keep], [ytr[i] for i in keep]
    out = linear_probe(xtr_imb, ytr_imb, xdv, ydv, xte, yte, l2_grid=(1e3,))
    assert out["dev_acc"] == pytest.approx(100.0 / 3)
    out = linear_probe(xtr_imb, ytr_imb, xdv, ydv, xte, yte, l2_grid=(1e3, 1e-4))
    assert out["l2"] == pytest.approx(1e-4)
    assert out["dev_acc"] == pytest.approx(100.0)
    # both perfect on dev -> the stronger regularisation wins, whatever the grid order
    out = linear_probe(xtr, ytr, xdv, ydv, xte, yte, l2_grid=(1e-4, 1e-3))
    assert out["l2"] == pytest.approx(1e-3)


def test_selection_consistent_with_single_l2_runs():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(300, 20, generator=g)
    w = torch.randn(20, 3, generator=g)
    y = [f"c{i}" for i in (x @ w + 2.0 * torch.randn(300, 3, generator=g)).argmax(1).tolist()]
    grid = (1e-4, 1e-2, 1e-1, 1.0)
    args = (x[:100], y[:100], x[100:200], y[100:200], x[200:], y[200:])
    single = {l2: linear_probe(*args, l2_grid=(l2,)) for l2 in grid}
    best_dev = max(r["dev_acc"] for r in single.values())
    expected_l2 = max(l2 for l2, r in single.items() if r["dev_acc"] == best_dev)
    out = linear_probe(*args, l2_grid=grid)
    assert out["l2"] == expected_l2
    assert out["dev_acc"] == best_dev
    assert out["test_acc"] == single[expected_l2]["test_acc"]
    assert linear_probe(*args, l2_grid=grid) == out  # deterministic


def test_unseen_test_label_counts_as_wrong():
    (xtr, ytr), (xdv, ydv), (xte, yte) = _splits()
    yte = list(yte)
    yte[0] = "never_seen_in_train"
    ydv = ["unknown"] + list(ydv[1:])
    out = linear_probe(xtr, ytr, xdv, ydv, xte, yte)
    assert out["test_acc"] == pytest.approx(100.0 * 89 / 90)
    assert out["dev_acc"] == pytest.approx(100.0 * 59 / 60)
    assert out["num_classes"] == 3


def test_majority_chance_and_constant_feature():
    (xtr, ytr), (xdv, ydv), (xte, yte) = _splits()
    xtr, xdv, xte = (torch.cat([x, torch.ones(len(x), 1)], 1) for x in (xtr, xdv, xte))
    xte[:, -1] = 5.0  # constant in train, different at test: must not blow up
    yte = ["class0"] * 60 + list(yte[60:])  # only 20 of the first 60 really are class0
    out = linear_probe(xtr, ytr, xdv, ydv, xte, yte)
    assert out["chance_acc"] == pytest.approx(100.0 * (60 + 10) / 90)
    assert out["test_acc"] == pytest.approx(100.0 * (20 + 30) / 90)
