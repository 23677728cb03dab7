"""SpecAugment (time and frequency masking) on features ``(B, T, F)``, training mode only."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from toolkit.registry import AUGMENTATIONS


@AUGMENTATIONS.register("specaugment")
class SpecAugment(nn.Module):
    """Masks ``num_freq_masks`` bands of ≤ ``freq_mask_width`` bins and ``num_time_masks`` spans
    of ≤ ``time_mask_ratio`` × the clip's valid length (frames) with zeros (the normalised mean).

    Randomness comes from the global torch RNG, so it is restored exactly on resume.
    """

    def __init__(
        self,
        num_freq_masks: int = 2,
        freq_mask_width: int = 15,
        num_time_masks: int = 2,
        time_mask_ratio: float = 0.1,
    ) -> None:
        super().__init__()
        self.num_freq_masks = num_freq_masks
        self.freq_mask_width = freq_mask_width
        self.num_time_masks = num_time_masks
        self.time_mask_ratio = time_mask_ratio

    def forward(self, feats: Tensor, lens: Tensor) -> Tensor:
        """feats ``(B, T, F)``, lens ``(B,)`` → masked copy (identity in eval mode)."""
        if not self.training:
            return feats
        b, t, f = feats.shape
        dev = feats.device
        keep = torch.ones(b, t, f, dtype=torch.bool, device=dev)
        fr = torch.arange(f, device=dev)
        tr = torch.arange(t, device=dev)
        for _ in range(self.num_freq_masks):
            width = torch.randint(0, self.freq_mask_width + 1, (b, 1), device=dev)
            start = (torch.rand(b, 1, device=dev) * (f - width).clamp(min=1)).long()
            keep &= ~((fr >= start) & (fr < start + width))[:, None, :]
        max_w = (lens.float() * self.time_mask_ratio).long().clamp(min=0)
        for _ in range(self.num_time_masks):
            width = (torch.rand(b, device=dev) * (max_w + 1).float()).long()
            start = (torch.rand(b, device=dev) * (lens - width).clamp(min=1).float()).long()
            keep &= ~((tr[None] >= start[:, None]) & (tr[None] < (start + width)[:, None]))[
                :, :, None
            ]
        return feats * keep
