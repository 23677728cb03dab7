"""Contrastive (CLAP / InfoNCE) audio–text objective with cross-rank negatives."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from toolkit import distributed as D
from toolkit.layers import lengths_to_mask
from toolkit.registry import OBJECTIVES, TEXT_ENCODERS


def masked_mean(hidden: Tensor, lens: Tensor) -> Tensor:
    """``(B, T, D)``, ``(B,)`` → ``(B, D)`` mean over valid frames."""
    mask = lengths_to_mask(lens, hidden.shape[1]).to(hidden.dtype)[..., None]
    return (hidden * mask).sum(1) / lens.clamp(min=1)[:, None].to(hidden.dtype)


def symmetric_info_nce(
    audio: Tensor, text: Tensor, logit_scale: Tensor, sizes: list[int] | None = None
) -> Tensor:
    """Local part of the symmetric InfoNCE loss.

    audio/text: this rank's L2-normalised rows ``(b, E)``; ``sizes``: every rank's ``b`` (None
    without DDP). Row ``i``'s positive is column ``offset + i`` of the gathered ``(N, E)``
    matrices. Returns ``Σ_local (CE_a→t + CE_t→a) / (2 N)``: summed over ranks, the global mean.
    """
    all_audio, offset = D.gather_with_grad(audio, sizes)
    all_text, _ = D.gather_with_grad(text, sizes)
    target = torch.arange(audio.shape[0], device=audio.device) + offset
    logits_a2t = logit_scale * audio @ all_text.t()  # (b, N)
    logits_t2a = logit_scale * text @ all_audio.t()  # (b, N)
    loss = F.cross_entropy(logits_a2t.float(), target, reduction="sum") + F.cross_entropy(
        logits_t2a.float(), target, reduction="sum"
    )
    return loss / (2 * all_audio.shape[0])


@OBJECTIVES.register("contrastive")
class Contrastive(nn.Module):
    """CLAP-style objective: mean-pooled audio and a text tower, each projected to ``embed_dim``
    and L2-normalised; symmetric InfoNCE with a learnable temperature.

    The temperature is ``1 / exp(logit_scale)`` with ``exp(logit_scale)`` clamped to
    ``max_logit_scale``. Negatives come from all DDP ranks (gathered with gradients), ranks may
    hold different batch sizes. Each rank's ``loss`` is scaled so that DDP's gradient average
    equals the gradient of the global-batch loss (so ``loss`` itself is world_size × its share).
    """

    def __init__(
        self,
        encoder_dim: int,
        vocab_size: int,
        text_encoder: dict[str, Any],
        embed_dim: int = 256,
        init_temperature: float = 0.07,
        max_logit_scale: float = 100.0,
        learn_temperature: bool = True,
    ) -> None:
        super().__init__()
        self.text_encoder = TEXT_ENCODERS.build(
            text_encoder, key="objective.text_encoder", vocab_size=vocab_size
        )
        self.audio_proj = nn.Sequential(
            nn.Linear(encoder_dim, embed_dim), nn.GELU(), nn.Linear(embed_dim, embed_dim)
        )
        self.text_proj = nn.Sequential(
            nn.Linear(self.text_encoder.output_dim, embed_dim),
            nn.GELU(),
            nn.Linear(embed_dim, embed_dim),
        )
        self.logit_scale = nn.Parameter(
            torch.tensor(math.log(1.0 / init_temperature)), requires_grad=learn_temperature
        )
        self.max_log_scale = math.log(max_logit_scale)
        self.embed_dim = embed_dim

    def scale(self) -> Tensor:
        """Clamped ``1/temperature`` (scalar)."""
        return self.logit_scale.clamp(max=self.max_log_scale).exp()

    def embed_audio(self, hidden: Tensor, lens: Tensor) -> Tensor:
        """Encoder output ``(B, T, D)`` → L2-normalised audio embeddings ``(B, E)``."""
        return F.normalize(self.audio_proj(masked_mean(hidden, lens)), dim=-1)

    def embed_text(self, tokens: Tensor, lens: Tensor) -> Tensor:
        """Token ids ``(B, L)`` → L2-normalised text embeddings ``(B, E)``."""
        return F.normalize(self.text_proj(self.text_encoder(tokens, lens)), dim=-1)

    def forward(self, encoder_out: Tensor, encoder_lens: Tensor, batch: dict) -> dict[str, Tensor]:
        """Loss dict: ``loss`` (scalar), ``temperature``, ``acc_a2t`` (in-batch top-1, local)."""
        audio = self.embed_audio(encoder_out, encoder_lens)
        text = self.embed_text(batch["text_tokens"], batch["text_lens"])
        sizes = D.gather_sizes(len(audio), audio.device) if D.is_distributed() else None
        scale = self.scale()
        loss = symmetric_info_nce(audio, text, scale, sizes) * D.world_size()
        with torch.no_grad():
            local = audio @ text.t()
            acc = (local.argmax(1) == torch.arange(len(local), device=local.device)).float().mean()
        return {"loss": loss, "temperature": 1.0 / scale.detach(), "acc_a2t": acc}
