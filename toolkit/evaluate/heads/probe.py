"""Probe heads trained on cached frame-level encoder outputs (the encoder is never run again).

Heads (``(B, T, D)`` frames + ``(B,)`` valid lengths → ``(B, C)`` logits):

* ``mean``: masked mean over the valid frames → linear. Its pooling has no parameters, so it is
  computed once per clip and training touches only the ``(N, D)`` pooled matrix.
* ``attention``: multi-head attention pooling → linear. Head ``h`` has one learned query
  ``q_h (D,)`` scoring every valid frame (``q_h·x_t / sqrt(D)``, padded frames masked out of the
  softmax); it averages its own group of ``D / H`` channels (channels split into ``H`` contiguous
  groups) with those weights; the groups, concatenated back to ``D``, go through the linear
  layer. ``H·D + (D + 1)·C`` parameters. Queries start at zero, so an untrained attention head
  *is* the mean head.

Protocol of :func:`fit_probe` (fixed; see docs/evaluation_probes.md):

1. Frames are standardised per channel with the mean / std of every valid train frame (constant
   channels are only centred), padded once into length buckets (float16, zero padding).
2. For every seed and every lr of ``lr_grid``: the head is initialised from ``manual_seed(seed)``
   (the same init for every lr), trained for ``steps`` AdamW steps (betas 0.9/0.999, decoupled
   ``weight_decay`` on matrices only, lr cosine-decayed to 0) on batches of ``batch_size`` clips
   drawn from one length bucket at a time (seeded order, every clip once per epoch). Loss: mean
   cross-entropy (single-label) or mean binary cross-entropy over clips × classes (multi-label).
3. The lr with the best dev score averaged over seeds is chosen (ties: the smaller lr); the test
   scores of that lr's heads (one per seed) are reported as mean ± sample std. Single-label
   score: accuracy (test labels unseen in train count wrong); multi-label: macro mAP over the
   classes with a positive in the split (others excluded and counted).

On CPU everything is deterministic for a given seed.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from toolkit.evaluate.metrics import (
    accuracy,
    label_prior_map,
    majority_share,
    mean_average_precision,
)
from toolkit.layers import AttentionPool, masked_mean
from toolkit.train.optim import decay_groups
from toolkit.train.scheduler import warmup_cosine_factor

log = logging.getLogger(__name__)

Pooling = Literal["mean", "attention"]
POOLINGS: tuple[str, ...] = ("mean", "attention")
DEFAULT_LR_GRID = (1e-3, 3e-3, 1e-2, 3e-2)
_STD_EPS = 1e-6
_EVAL_BATCH = 256


class MeanPoolHead(nn.Module):
    """Masked mean pooling + linear: ``(B, T, D), (B,) → (B, C)``."""

    learned_pooling = False

    def __init__(self, dim: int, num_classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, num_classes)

    def pool(self, x: Tensor, lens: Tensor) -> Tensor:
        """``(B, D)`` mean of the valid frames (see :func:`masked_mean`)."""
        return masked_mean(x, lens)

    def classify(self, pooled: Tensor) -> Tensor:
        """``(B, D)`` pooled vectors → ``(B, C)`` logits."""
        return self.linear(pooled)

    def forward(self, x: Tensor, lens: Tensor) -> Tensor:
        return self.classify(self.pool(x, lens))


class AttentionPoolHead(nn.Module):
    """Multi-head attention pooling (:class:`toolkit.layers.AttentionPool`) + linear:
    ``(B, T, D), (B,) → (B, C)``. See the module docstring for the exact form."""

    learned_pooling = True

    def __init__(self, dim: int, num_classes: int, heads: int = 4) -> None:
        super().__init__()
        self.pooling = AttentionPool(dim, heads)
        self.linear = nn.Linear(dim, num_classes)

    def attention(self, x: Tensor, lens: Tensor) -> Tensor:
        """``(B, T, H)`` attention weights: softmax over the valid frames, 0 on padding (all 0
        for a clip without frames)."""
        return self.pooling.attention(x, lens)

    def pool(self, x: Tensor, lens: Tensor) -> Tensor:
        """``(B, D)``: channel group ``h`` averaged with head ``h``'s weights."""
        return self.pooling(x, lens)

    def classify(self, pooled: Tensor) -> Tensor:
        return self.linear(pooled)

    def forward(self, x: Tensor, lens: Tensor) -> Tensor:
        return self.classify(self.pool(x, lens))


def build_head(pooling: str, dim: int, num_classes: int, heads: int = 4) -> nn.Module:
    """A fresh ``mean`` or ``attention`` head (``heads`` is used by ``attention`` only)."""
    if pooling == "mean":
        return MeanPoolHead(dim, num_classes)
    if pooling == "attention":
        return AttentionPoolHead(dim, num_classes, heads)
    raise ValueError(f"unknown pooling {pooling!r}; known: {', '.join(POOLINGS)}")


# ----------------------------------------------------------------------------- cached inputs
@dataclass
class Standardizer:
    """Per-channel standardisation ``(x - mean) / std`` with train-frame statistics."""

    mean: Tensor  # (D,) float32
    std: Tensor  # (D,) float32, 1 for (near-)constant channels

    @classmethod
    def fit(cls, frames: Sequence[Tensor]) -> Standardizer:
        """Statistics over every frame of every ``(T_i, D)`` clip (float64 accumulation)."""
        if not frames:
            raise ValueError("Standardizer.fit: no clips")
        dim = frames[0].shape[1]
        s = torch.zeros(dim, dtype=torch.float64)
        s2 = torch.zeros(dim, dtype=torch.float64)
        n = 0
        for f in frames:
            f64 = f.detach().to("cpu", torch.float64)
            s += f64.sum(dim=0)
            s2 += f64.square().sum(dim=0)
            n += f64.shape[0]
        if n == 0:
            raise ValueError("Standardizer.fit: the clips have no frames")
        mean = s / n
        std = (s2 / n - mean.square()).clamp_min(0).sqrt()
        std = torch.where(std > _STD_EPS * (1 + mean.abs()), std, torch.ones_like(std))
        return cls(mean.float(), std.float())

    def __call__(self, x: Tensor) -> Tensor:
        """``(..., D)`` → float32 standardised ``(..., D)``."""
        return (x.float() - self.mean.to(x.device)) / self.std.to(x.device)


class FrameBank:
    """The clips of one split, standardised and zero-padded once, grouped in length buckets.

    Clips are sorted by length and cut into ``num_buckets`` contiguous buckets; bucket ``b``
    holds ``frames (n_b, T_b, D)`` (``dtype``), ``lens (n_b,)`` and the clips' original indices
    ``index (n_b,)``. Training batches come from one bucket at a time, trimmed to their own
    longest clip, so padding costs little.
    """

    def __init__(
        self,
        frames: Sequence[Tensor],
        standardizer: Standardizer,
        num_buckets: int = 1,
        dtype: torch.dtype = torch.float16,
        device: torch.device | str = "cpu",
    ) -> None:
        if not frames:
            raise ValueError("FrameBank: no clips")
        self.n = len(frames)
        self.dim = int(frames[0].shape[1])
        lens = torch.tensor([f.shape[0] for f in frames], dtype=torch.long)
        order = torch.argsort(lens, stable=True)
        self.buckets: list[tuple[Tensor, Tensor, Tensor]] = []
        for idx in torch.tensor_split(order, max(1, min(num_buckets, self.n))):
            blens = lens[idx]
            x = torch.zeros(len(idx), max(1, int(blens.max())), self.dim, dtype=dtype)
            for row, i in enumerate(idx.tolist()):
                f = frames[i]
                if f.shape[1] != self.dim:
                    raise ValueError(f"FrameBank: clip {i} has dim {f.shape[1]}, not {self.dim}")
                x[row, : f.shape[0]] = standardizer(f).to(dtype)
            self.buckets.append((x.to(device), blens.to(device), idx.to(device)))

    def batch(self, bucket: int, rows: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Rows of one bucket: float32 frames ``(b, max len, D)``, lens ``(b,)``, indices."""
        x, lens, idx = self.buckets[bucket]
        rows = rows.to(lens.device)
        blens = lens[rows]
        return x[rows, : max(1, int(blens.max()))].float(), blens, idx[rows]

    def train_batches(self, batch_size: int, gen: torch.Generator) -> Iterator[tuple]:
        """Endless ``(bucket, rows)`` batches: each epoch every bucket is shuffled and cut into
        batches of ``batch_size``, and all batches are visited in a shuffled order."""
        while True:
            batches = []
            for b, (_, lens, _) in enumerate(self.buckets):
                perm = torch.randperm(len(lens), generator=gen)
                batches += [(b, rows) for rows in perm.split(batch_size)]
            for j in torch.randperm(len(batches), generator=gen).tolist():
                yield batches[j]

    def eval_batches(
        self, batch_size: int = _EVAL_BATCH
    ) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        """Every clip once, in bucket order: ``(frames, lens, original indices)``."""
        for b, (_, lens, _) in enumerate(self.buckets):
            for rows in torch.arange(len(lens)).split(batch_size):
                yield self.batch(b, rows)


class _Source:
    """Training / scoring inputs of one split for one kind of head: the bank itself (learned
    pooling) or its pooled ``(N, D)`` vectors (parameter-free pooling)."""

    def __init__(self, bank: FrameBank, pool: Callable[[Tensor, Tensor], Tensor] | None) -> None:
        self.bank = bank
        self.pooled: Tensor | None = None
        if pool is not None:
            dev = bank.buckets[0][0].device
            pooled = torch.zeros(bank.n, bank.dim, device=dev)
            with torch.no_grad():
                for x, lens, idx in bank.eval_batches():
                    pooled[idx] = pool(x, lens)
            self.pooled = pooled

    def train_batches(self, batch_size: int, gen: torch.Generator) -> Iterator[tuple]:
        """Endless ``(inputs, indices)``; ``inputs`` is ``(pooled,)`` or ``(frames, lens)``."""
        if self.pooled is not None:
            while True:
                for rows in torch.randperm(self.bank.n, generator=gen).split(batch_size):
                    rows = rows.to(self.pooled.device)
                    yield (self.pooled[rows],), rows
        else:
            for b, rows in self.bank.train_batches(batch_size, gen):
                x, lens, idx = self.bank.batch(b, rows)
                yield (x, lens), idx

    @torch.no_grad()
    def logits(self, head: nn.Module) -> Tensor:
        """``(N, C)`` float32 logits in the split's original clip order."""
        was = head.training
        head.eval()
        if self.pooled is not None:
            out = torch.cat([head.classify(p) for p in self.pooled.split(_EVAL_BATCH)])
        else:
            parts = [(idx, head(x, lens)) for x, lens, idx in self.bank.eval_batches()]
            out = torch.zeros(self.bank.n, parts[0][1].shape[1], device=parts[0][1].device)
            for idx, logits in parts:
                out[idx] = logits
        head.train(was)
        return out.float().cpu()


def _forward(head: nn.Module, inputs: tuple[Tensor, ...]) -> Tensor:
    return head.classify(inputs[0]) if len(inputs) == 1 else head(*inputs)


# ----------------------------------------------------------------------------- protocol
@dataclass
class ProbeSplits:
    """The three splits of one task, standardised with train statistics and bucketed."""

    train: FrameBank
    dev: FrameBank
    test: FrameBank
    standardizer: Standardizer


def prepare_splits(
    train: Sequence[Tensor],
    dev: Sequence[Tensor],
    test: Sequence[Tensor],
    batch_size: int = 64,
    max_buckets: int = 8,
    dtype: torch.dtype = torch.float16,
    device: torch.device | str = "cpu",
) -> ProbeSplits:
    """Standardise (train statistics) and pad per-clip ``(T_i, D)`` frames once.

    The number of length buckets is ``clamp(N // (4 * batch_size), 1, max_buckets)`` per split,
    so a bucket holds several batches and batch composition changes from epoch to epoch.
    """
    std = Standardizer.fit(train)

    def bank(frames: Sequence[Tensor]) -> FrameBank:
        nb = max(1, min(max_buckets, len(frames) // (4 * batch_size)))
        return FrameBank(frames, std, nb, dtype, device)

    return ProbeSplits(bank(train), bank(dev), bank(test), std)


def score(logits: Tensor, target: Tensor) -> tuple[float, int]:
    """Split score in percent and number of excluded classes: accuracy for ``(N,)`` class ids,
    macro mAP for ``(N, C)`` multi-hot targets (classes without a positive are excluded)."""
    if target.dim() == 1:
        return accuracy(logits, target), 0
    res = mean_average_precision(logits, target)
    return res.map, res.num_excluded


def chance(target: Tensor) -> float:
    """Majority-label share (single-label; ``-1`` counted as a label) or label-prior mAP."""
    return majority_share(target) if target.dim() == 1 else label_prior_map(target)


@dataclass
class ProbeResult:
    """Outcome of :func:`fit_probe`; scores in percent."""

    pooling: str
    metric: str  # "acc" or "mAP"
    lr: float  # chosen on dev
    test: list[float]  # test score of the chosen lr, one per seed
    dev_by_lr: dict[float, list[float]]  # dev score per lr, one per seed
    chance: float
    num_classes: int
    num_train: int
    num_test: int
    excluded_test_classes: int = 0  # multi-label: classes without a test positive
    final_train_loss: dict[float, list[float]] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def mean(self) -> float:
        return statistics.fmean(self.test)

    @property
    def std(self) -> float | None:
        """Sample std over seeds; None with a single seed."""
        return statistics.stdev(self.test) if len(self.test) > 1 else None


def _check_targets(target: Tensor, n: int, name: str, num_classes: int | None) -> None:
    if target.shape[0] != n:
        raise ValueError(f"{name}: {target.shape[0]} targets for {n} clips")
    if target.dim() == 2 and num_classes is not None and target.shape[1] != num_classes:
        raise ValueError(f"{name}: {target.shape[1]} classes, train has {num_classes}")


def fit_probe(
    pooling: str,
    data: ProbeSplits,
    train_y: Tensor,
    dev_y: Tensor,
    test_y: Tensor,
    num_classes: int | None = None,
    lr_grid: Sequence[float] = DEFAULT_LR_GRID,
    steps: int = 300,
    batch_size: int = 64,
    weight_decay: float = 0.01,
    seeds: Sequence[int] = (0,),
    heads: int = 4,
) -> ProbeResult:
    """Train ``pooling`` heads on cached frames with the fixed protocol (module docstring).

    Args:
        pooling: ``"mean"`` or ``"attention"``.
        data: :func:`prepare_splits` output.
        train_y, dev_y, test_y: single-label ``(N,)`` long class ids (``-1`` = unknown: not
            allowed in train, always wrong in dev/test) or multi-label ``(N, C)`` 0/1.
        num_classes: single-label class count (default ``max(train_y) + 1``).
        lr_grid: AdamW peak learning rates; the best on dev (mean over seeds) is kept.
        steps, batch_size, weight_decay, seeds, heads: see the module docstring.

    Returns:
        A :class:`ProbeResult`.
    """
    t0 = time.perf_counter()
    multi = train_y.dim() == 2
    if not lr_grid or not seeds:
        raise ValueError("fit_probe: lr_grid and seeds must not be empty")
    if steps < 1 or batch_size < 1:
        raise ValueError("fit_probe: steps and batch_size must be >= 1")
    if multi:
        num_classes = train_y.shape[1]
        train_t = train_y.float()
    else:
        if bool((train_y < 0).any()):
            raise ValueError("fit_probe: train targets must be known classes (no -1)")
        num_classes = num_classes or int(train_y.max()) + 1
        train_t = train_y.long()
    for y, bank, name in ((train_y, data.train, "train"), (dev_y, data.dev, "dev")):
        _check_targets(y, bank.n, name, num_classes)
    _check_targets(test_y, data.test.n, "test", num_classes)
    device = data.train.buckets[0][0].device
    train_t = train_t.to(device)

    def new_head() -> nn.Module:
        return build_head(pooling, data.train.dim, num_classes, heads).to(device)

    if pooling not in POOLINGS:
        raise ValueError(f"unknown pooling {pooling!r}; known: {', '.join(POOLINGS)}")
    fixed = masked_mean if pooling == "mean" else None  # parameter-free pooling: pool once
    src_train, src_dev, src_test = (_Source(b, fixed) for b in (data.train, data.dev, data.test))
    lrs = sorted({float(v) for v in lr_grid})
    trained: dict[float, list[nn.Module]] = {lr: [] for lr in lrs}
    dev_by_lr: dict[float, list[float]] = {lr: [] for lr in lrs}
    final_loss: dict[float, list[float]] = {lr: [] for lr in lrs}
    tail = max(1, steps // 10)
    for seed in seeds:
        with torch.random.fork_rng(devices=[]):
            # every lr starts from the same initialisation and sees the same batches
            models = []
            for _ in lrs:
                torch.manual_seed(seed)
                models.append(new_head().train())
        opts = [
            torch.optim.AdamW(decay_groups(m, weight_decay), lr=lr) for m, lr in zip(models, lrs)
        ]
        scheds = [
            torch.optim.lr_scheduler.LambdaLR(o, lambda s: warmup_cosine_factor(s, 0, steps, 0.0))
            for o in opts
        ]
        losses: list[list[float]] = [[] for _ in lrs]
        gen = torch.Generator().manual_seed(seed)
        batches = src_train.train_batches(batch_size, gen)
        for step in range(steps):
            inputs, idx = next(batches)
            y = train_t[idx]
            for j, (m, opt, sched) in enumerate(zip(models, opts, scheds)):
                logits = _forward(m, inputs)
                if multi:
                    loss = F.binary_cross_entropy_with_logits(logits, y)
                else:
                    loss = F.cross_entropy(logits, y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                if step >= steps - tail:
                    losses[j].append(float(loss.detach()))
        for j, (m, lr) in enumerate(zip(models, lrs)):
            trained[lr].append(m)
            dev_by_lr[lr].append(score(src_dev.logits(m), dev_y)[0])
            final_loss[lr].append(statistics.fmean(losses[j]))
    best = max(lrs, key=lambda lr: (statistics.fmean(dev_by_lr[lr]), -lr))  # ties: smaller lr
    test_scores, excluded = [], 0
    for m in trained[best]:
        value, excluded = score(src_test.logits(m), test_y)
        test_scores.append(value)
    return ProbeResult(
        pooling=pooling,
        metric="mAP" if multi else "acc",
        lr=best,
        test=test_scores,
        dev_by_lr=dev_by_lr,
        chance=chance(test_y),
        num_classes=num_classes,
        num_train=data.train.n,
        num_test=data.test.n,
        excluded_test_classes=excluded,
        final_train_loss=final_loss,
        seconds=time.perf_counter() - t0,
    )
