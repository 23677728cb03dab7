"""CNN14-style convolutional encoder over fbank (PANNs, Kong et al. 2020), made length-aware:
padded frames never change valid outputs, in eval mode and in training-mode BatchNorm."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from toolkit.layers import lengths_to_mask
from toolkit.registry import ENCODERS

CNN14_CHANNELS = [64, 128, 256, 512, 1024, 2048]


class MaskedBatchNorm(nn.Module):
    """BatchNorm over ``(B, C, T, ...)`` whose training-mode statistics use only valid frames.

    ``forward(x, mask)``: ``mask`` ``(B, T)`` True on valid frames. Training mode normalises
    with the mean and (biased) variance over the valid ``(b, t, ...)`` positions of each channel
    and updates the running statistics (unbiased variance, ``momentum`` as in
    :class:`torch.nn.BatchNorm2d`); eval mode uses the running statistics. Parameter and buffer
    names match ``nn.BatchNorm2d``. Statistics are per process (no cross-GPU sync).
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """x ``(B, C, T, ...)``, mask ``(B, T)`` → ``(B, C, T, ...)`` (padded frames not zeroed)."""
        shape = [1, -1] + [1] * (x.dim() - 2)
        if self.training:
            m = mask.to(torch.float32).view(mask.shape[0], 1, mask.shape[1], *[1] * (x.dim() - 3))
            dims = [0] + list(range(2, x.dim()))
            xf = x.float()
            count = m.sum() * (x[0, 0, 0].numel())  # valid positions per channel
            mean = (xf * m).sum(dims) / count.clamp(min=1)
            var = (((xf - mean.view(shape)) * m) ** 2).sum(dims) / count.clamp(min=1)
            with torch.no_grad():  # an all-padding batch leaves the running statistics alone
                dtype = self.running_mean.dtype
                step = (count > 0).to(dtype) * self.momentum  # a tensor: no host sync
                unbiased = var * count / (count - 1).clamp(min=1)
                self.running_mean.lerp_(mean.to(dtype), step)
                self.running_var.lerp_(unbiased.to(dtype), step)
                self.num_batches_tracked += 1
        else:
            mean, var = self.running_mean, self.running_var
        scale = self.weight * torch.rsqrt(var + self.eps)
        shift = self.bias - mean * scale
        return x * scale.view(shape).to(x.dtype) + shift.view(shape).to(x.dtype)


def masked_avg_pool(x: Tensor, lens: Tensor, time: int, freq: int) -> tuple[Tensor, Tensor]:
    """Average-pool ``(B, C, T, F)`` by ``time × freq`` over valid frames only.

    Time windows are taken with ceil, the last one averaging only the clip's valid frames, so
    ``lens → ceil(lens / time)`` (a clip shorter than one window keeps one frame); frequency uses
    floor (trailing bins dropped, as in PANNs). Padded output frames are zero.
    """
    b, c, t, f = x.shape
    mask = lengths_to_mask(lens, t)
    x = x * mask[:, None, :, None].to(x.dtype)
    pad_t = -t % time
    x = F.pad(x, (0, 0, 0, pad_t))
    summed = F.avg_pool2d(x, (time, freq)) * time  # sum over time, mean over frequency
    count = F.pad(mask.to(x.dtype), (0, pad_t)).view(b, -1, time).sum(-1)  # (B, T')
    out = summed / count.clamp(min=1)[:, None, :, None]
    return out, lens.add(time - 1).div(time, rounding_mode="floor")


class ConvBlock(nn.Module):
    """Two (3×3 conv, no bias) + masked BatchNorm + ReLU, then masked ``pool`` average pooling.

    Padded frames are zeroed before each convolution, so a valid frame next to the padding reads
    zeros there, exactly as the convolution's own zero padding does for a clip alone."""

    def __init__(self, cin: int, cout: int, pool: tuple[int, int]) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.bn1 = MaskedBatchNorm(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = MaskedBatchNorm(cout)
        self.pool = pool

    def forward(self, x: Tensor, lens: Tensor) -> tuple[Tensor, Tensor]:
        """x ``(B, C, T, F)``, lens ``(B,)`` → ``(B, C', T', F')``, lens ``(B,)``."""
        mask = lengths_to_mask(lens, x.shape[2])
        m = mask[:, None, :, None].to(x.dtype)
        x = F.relu(self.bn1(self.conv1(x * m), mask))
        x = F.relu(self.bn2(self.conv2(x * m), mask))
        return masked_avg_pool(x, lens, *self.pool)


@ENCODERS.register("cnn")
class CNNEncoder(nn.Module):
    """CNN14-style encoder: masked BatchNorm over mel bins (``input_norm``), ``num_blocks``
    conv blocks (two 3×3 convs + BN + ReLU, then 2×2 average pooling, dropout) with widths
    ``channels`` (default the CNN14 widths 64 → 2048), then a reduction over frequency
    (``freq_pool``: ``mean``, or ``max_mean`` = max + mean as PANNs does over time), and an
    optional linear projection to ``proj_dim``.

    ``forward(features (B, T, F), feature_lens (B,)) -> (hidden (B, T', D), lens (B,))`` with
    ``D = proj_dim or channels[num_blocks - 1]``. Every time-pooling block maps
    ``lens → ceil(lens / 2)``; by default the last block does not pool (as in CNN14) so the
    time stride is 2^(num_blocks - 1) (CNN14: 32, 100 → 3.125 vectors/s); ``time_pool_blocks``
    limits time pooling to the first N blocks (e.g. 3: stride 8, 12.5 vectors/s).
    Padding never changes valid outputs, and training-mode BatchNorm statistics ignore padding.
    """

    def __init__(
        self,
        input_dim: int,
        channels: list[int] | None = None,
        num_blocks: int | None = None,
        pool_last: bool = False,
        time_pool_blocks: int | None = None,
        freq_pool: Literal["mean", "max_mean"] = "mean",
        input_norm: bool = True,
        dropout: float = 0.2,
        proj_dim: int = 0,
    ) -> None:
        super().__init__()
        channels = list(CNN14_CHANNELS if channels is None else channels)
        num_blocks = len(channels) if num_blocks is None else num_blocks
        if not 1 <= num_blocks <= len(channels):
            raise ValueError(f"num_blocks={num_blocks} must be in 1..{len(channels)} (channels)")
        if freq_pool not in ("mean", "max_mean"):
            raise ValueError(f"freq_pool must be 'mean' or 'max_mean', got {freq_pool!r}")
        channels = channels[:num_blocks]
        pooling = num_blocks if pool_last else num_blocks - 1  # blocks that pool at all
        time_pools = pooling if time_pool_blocks is None else min(time_pool_blocks, pooling)
        blocks, freq = [], input_dim
        for i, cout in enumerate(channels):
            pool = (2 if i < time_pools else 1, 2 if i < pooling else 1)
            blocks.append(ConvBlock(1 if i == 0 else channels[i - 1], cout, pool))
            freq //= pool[1]
        if freq < 1:
            raise ValueError(
                f"input_dim={input_dim} mel bins are too few for {pooling} 2x frequency poolings"
            )
        self.input_norm = MaskedBatchNorm(input_dim) if input_norm else None
        self.blocks = nn.ModuleList(blocks)
        self.freq_pool = freq_pool
        self.dropout = nn.Dropout(dropout)
        self.proj = nn.Linear(channels[-1], proj_dim) if proj_dim > 0 else None
        self.output_dim = proj_dim if proj_dim > 0 else channels[-1]
        self.frame_stride = 2**time_pools  # input frames per output vector

    def out_lens(self, lens: Tensor) -> Tensor:
        """Valid output frames for ``lens`` input frames."""
        for block in self.blocks:
            lens = lens.add(block.pool[0] - 1).div(block.pool[0], rounding_mode="floor")
        return lens

    def forward(self, features: Tensor, feature_lens: Tensor) -> tuple[Tensor, Tensor]:
        """features ``(B, T, F)``, feature_lens ``(B,)`` → hidden ``(B, T', D)``, lens ``(B,)``."""
        lens = feature_lens
        mask = lengths_to_mask(lens, features.shape[1])
        x = features.masked_fill(~mask[..., None], 0.0)
        if self.input_norm is not None:  # per mel bin: (B, F, T) channels-first
            x = self.input_norm(x.transpose(1, 2), mask).transpose(1, 2)
        x = x.unsqueeze(1)  # (B, 1, T, F)
        for block in self.blocks:
            x, lens = block(x, lens)
            x = self.dropout(x)
        y = x.mean(dim=3)  # (B, C, T')
        if self.freq_pool == "max_mean":
            y = y + x.amax(dim=3)
        y = y.transpose(1, 2)  # (B, T', C)
        if self.proj is not None:
            y = self.proj(self.dropout(y))
        return y.masked_fill(~lengths_to_mask(lens, y.shape[1])[..., None], 0.0), lens
