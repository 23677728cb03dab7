"""An out-of-tree objective plugin: InfoNCE with an additive margin on the positive pairs.

It lives outside the package on purpose: a config names it with ``plugins: [local.margin_contrastive]``
(importable because recipes run ``python -m toolkit.bin.train`` from their own folder) and then uses
``objective: {name: margin_contrastive, margin: 0.1, ...}``. Nothing in ``toolkit/`` is edited.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from toolkit import distributed as D
from toolkit.objectives.contrastive import Contrastive
from toolkit.registry import OBJECTIVES


def margin_info_nce(audio: Tensor, text: Tensor, scale: Tensor, margin: float) -> Tensor:
    """Symmetric InfoNCE over ``(B, E)`` L2-normalised rows; ``margin`` is subtracted from the
    positive cosine before scaling (AM-softmax style), so positives must win by that much."""
    sim = audio @ text.t()  # (B, B)
    sim = sim - margin * torch.eye(len(sim), dtype=sim.dtype, device=sim.device)
    logits = (scale * sim).float()
    target = torch.arange(len(sim), device=sim.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))


@OBJECTIVES.register("margin_contrastive")
class MarginContrastive(Contrastive):
    """The built-in contrastive towers with a margin loss (single-process negatives only)."""

    def __init__(
        self,
        encoder_dim: int,
        vocab_size: int,
        text_encoder: dict,
        margin: float = 0.1,
        embed_dim: int = 256,
        init_temperature: float = 0.07,
    ) -> None:
        super().__init__(encoder_dim, vocab_size, text_encoder, embed_dim, init_temperature)
        self.margin = margin

    def loss_from_projections(self, audio_raw: Tensor, text_raw: Tensor) -> dict[str, Tensor]:
        """Loss dict: ``loss`` and ``positive_cos`` (mean cosine of the matching pairs). Only the
        loss is replaced: ``forward`` (and gradient caching) come from ``Contrastive``."""
        if D.is_distributed():
            raise RuntimeError("margin_contrastive is a single-process example; use contrastive")
        audio, text = F.normalize(audio_raw, dim=-1), F.normalize(text_raw, dim=-1)
        loss = margin_info_nce(audio, text, self.scale(), self.margin)
        return {"loss": loss, "positive_cos": (audio * text).sum(-1).mean().detach()}
