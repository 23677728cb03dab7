"""SigLIP: pairwise sigmoid audio–text loss (Zhai et al. 2023) with cross-rank negatives."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from toolkit import distributed as D
from toolkit.objectives.contrastive import Contrastive
from toolkit.registry import OBJECTIVES


def sigmoid_pair_loss(
    audio: Tensor, text: Tensor, scale: Tensor, bias: Tensor, sizes: list[int] | None = None
) -> Tensor:
    """Local part of the pairwise sigmoid loss.

    audio/text: this rank's L2-normalised rows ``(b, E)``; ``sizes``: every rank's ``b`` (None
    without DDP). With the texts of all ranks gathered ``(N, E)``, every pair ``(i, j)`` of a local
    audio row and a global text row is a binary problem, ``z_ij = +1`` for the matching pair
    (column ``offset + i``) and ``-1`` otherwise, with logit ``scale · a_i·t_j + bias``.
    Returns ``-Σ_local_pairs log σ(z_ij · logit_ij) / N``: summed over ranks this is the loss of
    the global batch (all ``N²`` pairs, normalised by ``N`` as in the paper).
    """
    all_text, offset = D.gather_with_grad(text, sizes)
    logits = (scale * audio @ all_text.t() + bias).float()  # (b, N)
    sign = -torch.ones_like(logits)
    rows = torch.arange(audio.shape[0], device=audio.device)
    sign[rows, rows + offset] = 1.0
    return -F.logsigmoid(sign * logits).sum() / all_text.shape[0]


@OBJECTIVES.register("siglip")
class SigLIP(Contrastive):
    """SigLIP objective: the towers of ``contrastive`` (mean-pooled audio and a text tower, each
    projected to ``embed_dim`` and L2-normalised; same ``embed_audio`` / ``embed_text``) trained
    with the pairwise sigmoid loss and a learnable scale ``exp(logit_scale)`` (init
    ``init_scale``, clamped to ``max_logit_scale``) and bias (init ``init_bias``).

    Negatives come from all DDP ranks (texts gathered with gradients; ranks may hold different
    batch sizes). Each rank's ``loss`` is world_size × its share, so DDP's gradient average equals
    the gradient of the global-batch loss.
    """

    def __init__(
        self,
        encoder_dim: int,
        vocab_size: int,
        text_encoder: dict[str, Any],
        embed_dim: int = 256,
        init_scale: float = 10.0,
        init_bias: float = -10.0,
        max_logit_scale: float = 100.0,
        learn_temperature: bool = True,
        learn_bias: bool = True,
    ) -> None:
        if init_scale <= 0:
            raise ValueError(f"init_scale must be > 0, got {init_scale}")
        super().__init__(
            encoder_dim,
            vocab_size,
            text_encoder,
            embed_dim=embed_dim,
            init_temperature=1.0 / init_scale,
            max_logit_scale=max_logit_scale,
            learn_temperature=learn_temperature,
        )
        with torch.no_grad():  # exactly log(init_scale), not log(1 / (1 / init_scale))
            self.logit_scale.fill_(math.log(init_scale))
        self.bias = nn.Parameter(torch.tensor(float(init_bias)), requires_grad=learn_bias)

    def loss_from_projections(self, audio_raw: Tensor, text_raw: Tensor) -> dict[str, Tensor]:
        """Loss dict (``forward`` is the contrastive one): ``loss`` (scalar), ``temperature``
        (1/scale), ``bias``, ``acc_a2t`` (in-batch top-1, local)."""
        audio, text, sizes, scale, acc = self.normalised_batch(audio_raw, text_raw)
        loss = sigmoid_pair_loss(audio, text, scale, self.bias, sizes) * D.world_size()
        return {
            "loss": loss,
            "temperature": 1.0 / scale.detach(),
            "bias": self.bias.detach(),
            "acc_a2t": acc,
        }
