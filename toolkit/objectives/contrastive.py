"""Contrastive (CLAP / InfoNCE) audio–text objective with cross-rank negatives."""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from toolkit import distributed as D
from toolkit.layers import masked_mean
from toolkit.registry import OBJECTIVES, TEXT_ENCODERS

ACTIVATIONS: dict[str, type[nn.Module]] = {"gelu": nn.GELU, "relu": nn.ReLU}


def projection_head(
    in_dim: int, out_dim: int, num_layers: int = 2, activation: str = "gelu"
) -> nn.Sequential:
    """``num_layers`` linear layers with ``activation`` (gelu | relu) between them (hidden width
    ``out_dim``).

    1: ``Linear(in, out)``; 2: ``Linear(in, out) → GELU → Linear(out, out)`` (the CLAP MLP head;
    Auden's released CLAP models use ReLU).
    """
    if num_layers < 1:
        raise ValueError(f"proj_layers must be >= 1, got {num_layers}")
    if activation not in ACTIVATIONS:
        raise ValueError(
            f"proj_activation: unknown {activation!r}; known: {', '.join(ACTIVATIONS)}"
        )
    layers: list[nn.Module] = []
    dim = in_dim
    for _ in range(num_layers - 1):
        layers += [nn.Linear(dim, out_dim), ACTIVATIONS[activation]()]
        dim = out_dim
    layers.append(nn.Linear(dim, out_dim))
    return nn.Sequential(*layers)


def embed_norm_penalty(audio: Tensor, text: Tensor) -> Tensor:
    """``½ (mean_b (‖a_b‖ − 1)² + mean_b (‖t_b‖ − 1)²)`` of pre-normalisation embeddings
    ``(B, E)`` (computed in float32): pulls the projection outputs towards the unit sphere so
    that the L2 normalisation stays well conditioned."""
    pen_a = (audio.float().norm(dim=-1) - 1.0).pow(2).mean()
    pen_t = (text.float().norm(dim=-1) - 1.0).pow(2).mean()
    return 0.5 * (pen_a + pen_t)


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
    """CLAP-style objective: pooled audio and a text tower, each projected to ``embed_dim``
    and L2-normalised; symmetric InfoNCE with a learnable (or fixed) temperature.

    The temperature is ``1 / exp(logit_scale)`` with ``exp(logit_scale)`` clamped to
    ``max_logit_scale``. Negatives come from all DDP ranks (gathered with gradients), ranks may
    hold different batch sizes. Each rank's ``loss`` is scaled so that DDP's gradient average
    equals the gradient of the global-batch loss (so ``loss`` itself is world_size × its share).

    Options (defaults = the original head): ``proj_layers`` (1 linear, 2 MLP, ...),
    ``proj_activation`` (``gelu``; ``relu`` as in Auden's released CLAP models),
    ``audio_pooling`` (``mean_then_project``: project the masked mean of the frames;
    ``project_then_mean``: project every frame, then take the masked mean) and
    ``embed_norm_weight`` (× :func:`embed_norm_penalty` of this rank's pre-normalisation
    embeddings added to ``loss`` and logged as ``embed_norm_reg``).
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
        proj_layers: int = 2,
        audio_pooling: Literal["mean_then_project", "project_then_mean"] = "mean_then_project",
        embed_norm_weight: float = 0.0,
        proj_activation: Literal["gelu", "relu"] = "gelu",
    ) -> None:
        super().__init__()
        if audio_pooling not in ("mean_then_project", "project_then_mean"):
            raise ValueError(f"audio_pooling: unknown {audio_pooling!r}")
        if embed_norm_weight < 0:
            raise ValueError(f"embed_norm_weight must be >= 0, got {embed_norm_weight}")
        self.text_encoder = TEXT_ENCODERS.build(
            text_encoder, key="objective.text_encoder", vocab_size=vocab_size
        )
        self.audio_proj = projection_head(encoder_dim, embed_dim, proj_layers, proj_activation)
        self.text_proj = projection_head(
            self.text_encoder.output_dim, embed_dim, proj_layers, proj_activation
        )
        self.logit_scale = nn.Parameter(
            torch.tensor(math.log(1.0 / init_temperature)), requires_grad=learn_temperature
        )
        self.max_log_scale = math.log(max_logit_scale)
        self.embed_dim = embed_dim
        self.audio_pooling = audio_pooling
        self.embed_norm_weight = embed_norm_weight

    def scale(self) -> Tensor:
        """Clamped ``1/temperature`` (scalar)."""
        return self.logit_scale.clamp(max=self.max_log_scale).exp()

    def project_audio(self, hidden: Tensor, lens: Tensor) -> Tensor:
        """Encoder output ``(B, T, D)`` → pre-normalisation audio embeddings ``(B, E)``."""
        if self.audio_pooling == "project_then_mean":
            return masked_mean(self.audio_proj(hidden), lens)
        return self.audio_proj(masked_mean(hidden, lens))

    def project_text(self, tokens: Tensor, lens: Tensor) -> Tensor:
        """Token ids ``(B, L)`` → pre-normalisation text embeddings ``(B, E)``."""
        return self.text_proj(self.text_encoder(tokens, lens))

    def embed_audio(self, hidden: Tensor, lens: Tensor) -> Tensor:
        """Encoder output ``(B, T, D)`` → L2-normalised audio embeddings ``(B, E)``."""
        return F.normalize(self.project_audio(hidden, lens), dim=-1)

    def embed_text(self, tokens: Tensor, lens: Tensor) -> Tensor:
        """Token ids ``(B, L)`` → L2-normalised text embeddings ``(B, E)``."""
        return F.normalize(self.project_text(tokens, lens), dim=-1)

    def forward(self, encoder_out: Tensor, encoder_lens: Tensor, batch: dict) -> dict[str, Tensor]:
        """Loss dict: ``loss`` (scalar), ``temperature``, ``acc_a2t`` (in-batch top-1, local);
        ``embed_norm_reg`` (unweighted, local) when ``embed_norm_weight > 0``."""
        audio_raw = self.project_audio(encoder_out, encoder_lens)
        text_raw = self.project_text(batch["text_tokens"], batch["text_lens"])
        return self.loss_from_projections(audio_raw, text_raw)

    def normalised_batch(
        self, audio_raw: Tensor, text_raw: Tensor
    ) -> tuple[Tensor, Tensor, list[int] | None, Tensor, Tensor]:
        """What every loss of these towers starts from: the L2-normalised audio and text rows,
        every rank's batch size (None without DDP), the clamped scale and the local in-batch
        audio→text top-1 accuracy (no gradient)."""
        audio = F.normalize(audio_raw, dim=-1)
        text = F.normalize(text_raw, dim=-1)
        sizes = D.gather_sizes(len(audio), audio.device) if D.is_distributed() else None
        with torch.no_grad():
            local = audio @ text.t()
            acc = (local.argmax(1) == torch.arange(len(local), device=local.device)).float().mean()
        return audio, text, sizes, self.scale(), acc

    def loss_from_projections(self, audio_raw: Tensor, text_raw: Tensor) -> dict[str, Tensor]:
        """The loss dict of :meth:`forward` from this rank's pre-normalisation embeddings
        ``(B, E)`` (:meth:`project_audio`, :meth:`project_text`); the entry point of gradient
        caching (``objective.grad_cache_chunk``, :class:`toolkit.model.AudioModel`)."""
        audio, text, sizes, scale, acc = self.normalised_batch(audio_raw, text_raw)
        loss = symmetric_info_nce(audio, text, scale, sizes) * D.world_size()
        out = {"loss": loss, "temperature": 1.0 / scale.detach(), "acc_a2t": acc}
        if self.embed_norm_weight > 0:
            reg = embed_norm_penalty(audio_raw, text_raw)
            out["loss"] = loss + self.embed_norm_weight * reg
            out["embed_norm_reg"] = reg.detach()
        return out
