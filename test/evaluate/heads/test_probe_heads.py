"""Probe heads on cached frames: padding invariance, learning separable toy problems (single- and
multi-label), lr selection on dev, determinism, bucketing and standardisation."""

from __future__ import annotations

import pytest
import torch

from toolkit.evaluate.heads.probe import (
    AttentionPoolHead,
    FrameBank,
    MeanPoolHead,
    Standardizer,
    build_head,
    fit_probe,
    prepare_splits,
)
from toolkit.layers import masked_mean

D, C = 8, 3
PATTERNS = torch.randn(C, D, generator=torch.Generator().manual_seed(7)) * 2
FAST = {"steps": 120, "batch_size": 16, "lr_grid": (1e-2, 3e-2)}


def clips(n: int, seed: int, multi: bool = False, noise: float = 1.0):
    """Clips of 3-10 frames: class pattern(s) + noise; single-label ids or (n, C) multi-hot."""
    g = torch.Generator().manual_seed(seed)
    frames, ys = [], []
    for i in range(n):
        t = int(torch.randint(3, 11, (1,), generator=g))
        if multi:
            y = (torch.rand(C, generator=g) < 0.4).float()
            signal = y @ PATTERNS
        else:
            y = i % C
            signal = PATTERNS[y]
        frames.append((signal + noise * torch.randn(t, D, generator=g)).half())
        ys.append(y)
    return frames, torch.stack(ys) if multi else torch.tensor(ys)


def padded(frames, extra: int = 0, fill: float = 0.0):
    lens = torch.tensor([f.shape[0] for f in frames])
    x = torch.full((len(frames), int(lens.max()) + extra, D), fill)
    for i, f in enumerate(frames):
        x[i, : f.shape[0]] = f.float()
    return x, lens


@pytest.mark.parametrize("pooling", ["mean", "attention"])
def test_padding_is_ignored(pooling: str):
    frames, _ = clips(6, 0)
    torch.manual_seed(0)
    head = build_head(pooling, D, C, heads=2)
    if pooling == "attention":
        torch.nn.init.normal_(head.pooling.query, std=3.0)  # non-uniform attention
    x, lens = padded(frames)
    ref = head(x, lens)
    for fill in (1e4, float("nan"), float("inf")):
        x2, lens2 = padded(frames, extra=5, fill=fill)
        assert torch.allclose(head(x2, lens2), ref, atol=1e-5), fill
    # each clip alone (no padding at all) gives the same logits
    alone = torch.cat([head(f.float()[None], torch.tensor([f.shape[0]])) for f in frames])
    assert torch.allclose(alone, ref, atol=1e-5)
    if pooling == "attention":
        w = head.attention(x2, lens2)
        assert w.shape == (6, x2.shape[1], 2)
        assert torch.allclose(w.sum(1), torch.ones(6, 2))
        assert bool((w[torch.arange(x2.shape[1])[None] >= lens2[:, None]] == 0).all())


def test_attention_with_zero_queries_is_mean_pooling_and_groups_cover_channels():
    frames, _ = clips(5, 1)
    x, lens = padded(frames, extra=2, fill=3.0)
    for heads, dim in ((4, 8), (3, 8)):  # equal groups (batched path) and uneven groups
        head = AttentionPoolHead(dim, C, heads)
        assert torch.allclose(head.pool(x, lens), masked_mean(x, lens), atol=1e-6)
        head.pooling.query.data.normal_()
        w = head.attention(x, lens)
        groups = torch.arange(dim) * heads // dim
        ref = torch.stack([(w[:, :, groups[d]] * x[:, :, d]).sum(1) for d in range(dim)], 1)
        assert torch.allclose(head.pool(x, lens), ref, atol=1e-5)
    assert sum(p.numel() for p in AttentionPoolHead(D, C, 4).parameters()) == 4 * D + (D + 1) * C
    with pytest.raises(ValueError, match="heads must be"):
        AttentionPoolHead(D, C, heads=D + 1)
    with pytest.raises(ValueError, match="unknown pooling"):
        build_head("max", D, C)


def test_empty_clip_pools_to_zero():
    x = torch.randn(2, 4, D)
    lens = torch.tensor([0, 3])
    for head in (MeanPoolHead(D, C), AttentionPoolHead(D, C, 2)):
        pooled = head.pool(x, lens)
        assert torch.equal(pooled[0], torch.zeros(D)) and bool(torch.isfinite(pooled).all())


def test_standardizer_and_bank_keep_every_clip():
    frames, _ = clips(37, 2)
    std = Standardizer.fit(frames)
    cat = torch.cat([f.double() for f in frames])
    assert torch.allclose(std.mean.double(), cat.mean(0), atol=1e-5)
    assert torch.allclose(std.std.double(), cat.std(0, unbiased=False), atol=1e-5)
    bank = FrameBank(frames, std, num_buckets=3)
    assert len(bank.buckets) == 3
    seen = []
    for x, lens, idx in bank.eval_batches(batch_size=5):
        for row, i in enumerate(idx.tolist()):
            assert lens[row] == frames[i].shape[0]
            want = std(frames[i]).half().float()
            assert torch.equal(x[row, : lens[row]], want)
            assert bool((x[row, lens[row] :] == 0).all())
        seen += idx.tolist()
    assert sorted(seen) == list(range(37))
    # one epoch of training batches visits every clip exactly once
    it = bank.train_batches(4, torch.Generator().manual_seed(0))
    n_batches = sum(-(-len(b[1]) // 4) for b in bank.buckets)
    epoch = [bank.batch(*next(it))[2] for _ in range(n_batches)]
    assert sorted(torch.cat(epoch).tolist()) == list(range(37))


@pytest.mark.parametrize("pooling", ["mean", "attention"])
def test_learns_separable_single_label(pooling: str):
    (ftr, ytr), (fdv, ydv), (fte, yte) = clips(60, 1), clips(30, 2), clips(30, 3)
    data = prepare_splits(ftr, fdv, fte, batch_size=16)
    res = fit_probe(pooling, data, ytr, ydv, yte, **FAST)
    assert res.metric == "acc" and res.num_classes == C
    assert res.mean == pytest.approx(100.0) and res.std is None
    assert res.chance == pytest.approx(100 / C)
    losses = res.final_train_loss[res.lr]
    assert losses[0] < 0.2  # the training loss went down from ~log(3)


@pytest.mark.parametrize("pooling", ["mean", "attention"])
def test_learns_separable_multi_label(pooling: str):
    (ftr, ytr), (fdv, ydv), (fte, yte) = (clips(80, s, multi=True) for s in (4, 5, 6))
    data = prepare_splits(ftr, fdv, fte, batch_size=16)
    res = fit_probe(pooling, data, ytr, ydv, yte, **FAST)
    assert res.metric == "mAP"
    assert res.mean > 99.0
    assert res.chance < 60.0  # label prior mAP


def test_attention_queries_receive_gradients():
    frames, y = clips(16, 8)
    x, lens = padded(frames)
    head = AttentionPoolHead(D, C, 2)
    torch.nn.init.normal_(head.linear.weight)
    torch.nn.functional.cross_entropy(head(x, lens), y).backward()
    assert head.pooling.query.grad is not None and head.pooling.query.grad.abs().sum() > 0


def test_lr_is_chosen_on_dev_not_test():
    (ftr, ytr), (fdv, ydv), (fte, yte) = clips(60, 1), clips(30, 2), clips(30, 3)
    data = prepare_splits(ftr, fdv, fte, batch_size=16)
    grid = (1e-7, 3e-2)
    good = fit_probe("mean", data, ytr, ydv, yte, steps=80, batch_size=16, lr_grid=grid)
    assert good.lr == 3e-2 and good.mean == pytest.approx(100.0)
    assert good.dev_by_lr[3e-2][0] > good.dev_by_lr[1e-7][0]
    # dev labels rotated: the trained head is always wrong on dev, the untrained one is not,
    # so the (nearly) untrained lr is picked and its poor test accuracy is reported
    bad = fit_probe("mean", data, ytr, (ydv + 1) % C, yte, steps=80, batch_size=16, lr_grid=grid)
    assert bad.dev_by_lr[3e-2][0] == 0.0
    assert bad.lr == 1e-7 and bad.mean < 90.0
    # ties go to the smaller lr
    same = fit_probe("mean", data, ytr, ydv, yte, steps=80, batch_size=16, lr_grid=(3e-2, 2e-2))
    assert same.dev_by_lr[2e-2] == same.dev_by_lr[3e-2] and same.lr == 2e-2


def test_deterministic_seeds_and_rng_untouched():
    (ftr, ytr), (fdv, ydv), (fte, yte) = clips(40, 1, noise=4.0), clips(20, 2), clips(20, 3)
    data = prepare_splits(ftr, fdv, fte, batch_size=8)
    kw = {"steps": 30, "batch_size": 8, "lr_grid": (1e-2,), "seeds": (0, 1)}
    state = torch.random.get_rng_state()
    a = fit_probe("attention", data, ytr, ydv, yte, **kw)
    assert torch.equal(torch.random.get_rng_state(), state)
    b = fit_probe("attention", data, ytr, ydv, yte, **kw)
    assert a.test == b.test and a.dev_by_lr == b.dev_by_lr
    assert a.final_train_loss == b.final_train_loss
    assert len(a.test) == 2 and a.std is not None
    losses = a.final_train_loss[1e-2]
    assert losses[0] != losses[1]  # the two seeds are different runs


def test_bad_targets_are_clear_errors():
    (ftr, ytr), (fdv, ydv), (fte, yte) = clips(12, 1), clips(6, 2), clips(6, 3)
    data = prepare_splits(ftr, fdv, fte, batch_size=4)
    with pytest.raises(ValueError, match="dev: 5 targets for 6 clips"):
        fit_probe("mean", data, ytr, ydv[:5], yte, steps=1)
    with pytest.raises(ValueError, match="no -1"):
        fit_probe("mean", data, ytr - 1, ydv, yte, steps=1)


def test_attention_sees_what_mean_pooling_cannot():
    """Class 1 clips hold one frame +p and one frame -p: their mean is noise, but a query along p
    singles out the +p frame."""
    p = torch.randn(D, generator=torch.Generator().manual_seed(3))
    p = 3 * p / p.norm()

    def cancelling(n: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        frames = []
        for i in range(n):
            x = torch.randn(int(torch.randint(4, 11, (1,), generator=g)), D, generator=g)
            if i % 2:
                x[0] += p
                x[1] -= p
            frames.append(x.half())
        return frames, torch.arange(n) % 2

    (ftr, ytr), (fdv, ydv), (fte, yte) = cancelling(120, 1), cancelling(60, 2), cancelling(60, 3)
    data = prepare_splits(ftr, fdv, fte, batch_size=16)
    kw = {"steps": 200, "batch_size": 16, "lr_grid": (1e-2, 3e-2)}
    mean = fit_probe("mean", data, ytr, ydv, yte, **kw)
    attention = fit_probe("attention", data, ytr, ydv, yte, **kw)
    assert mean.mean < 65.0
    assert attention.mean > 75.0
