"""Masked temporal pooling of padded frame features."""

from __future__ import annotations

import torch
from torch import Tensor


def _mask(hidden: Tensor, lens: Tensor) -> tuple[Tensor, Tensor]:
    """Return the (B, T, 1) validity mask and the (B, 1) clamped frame counts."""
    if hidden.dim() != 3:
        raise ValueError(f"hidden must be (B, T, D), got shape {tuple(hidden.shape)}")
    if lens.dim() != 1 or lens.shape[0] != hidden.shape[0]:
        raise ValueError(f"lens must be (B,) with B={hidden.shape[0]}, got {tuple(lens.shape)}")
    t = hidden.shape[1]
    lens = lens.to(hidden.device).long().clamp(0, t)
    mask = torch.arange(t, device=hidden.device)[None, :] < lens[:, None]
    count = lens.clamp_min(1).to(hidden.dtype)[:, None]
    return mask[:, :, None].to(hidden.dtype), count


def mean_std_pool(hidden: Tensor, lens: Tensor) -> Tensor:
    """Concatenated mean and (population) standard deviation over the valid frames.

    Args:
        hidden: (B, T, D) frame features, padded along T.
        lens: (B,) number of valid frames per sequence.

    Returns:
        (B, 2D): ``[mean, std]`` of the valid frames; std is 0 for a single frame.
    """
    mask, count = _mask(hidden, lens)
    mean = (hidden * mask).sum(dim=1) / count
    var = (((hidden - mean[:, None, :]) * mask) ** 2).sum(dim=1) / count
    return torch.cat([mean, var.clamp_min(0).sqrt()], dim=-1)
