"""Captioning objective: a text decoder over the encoder frames, trained with teacher forcing
(autoregressive) and optionally parallel prediction (CapPa, Tschannen et al. 2023)."""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import Tensor, nn

from toolkit.config import ConfigError, locate
from toolkit.decoders.generation import generate, generate_text
from toolkit.registry import DECODERS, OBJECTIVES
from toolkit.text.tokenizer import BOS_ID, EOS_ID, PAD_ID

log = logging.getLogger(__name__)


def smoothed_token_ce(
    logits: Tensor, targets: Tensor, label_smoothing: float, ignore_id: int = PAD_ID
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Summed token losses over the non-ignored targets.

    logits ``(N, V)``, targets ``(N,)`` → (label-smoothed CE sum (the loss), plain NLL sum
    (detached), correct-argmax count, token count). The smoothed loss of one token is
    ``(1 - ε)·NLL + ε·mean_c(-log p_c)``, as in ``F.cross_entropy(label_smoothing=ε)``.
    """
    keep = targets != ignore_id
    logp = logits[keep].float().log_softmax(-1)
    tgt = targets[keep]
    nll = -logp.gather(-1, tgt[:, None])[:, 0]
    loss = ((1 - label_smoothing) * nll - label_smoothing * logp.mean(-1)).sum()
    correct = (logp.detach().argmax(-1) == tgt).sum()
    return loss, nll.detach().sum(), correct, keep.sum()


@OBJECTIVES.register("captioning")
class Captioning(nn.Module):
    """Caption the clip with a text decoder cross-attending to the encoder output.

    Teacher forcing: the decoder reads ``text_tokens[:, :-1]`` (BOS, ...) and predicts
    ``text_tokens[:, 1:]`` (..., EOS); PAD targets are ignored. In training mode a
    ``parallel_fraction`` of the batch (stochastically rounded count of rows, chosen at random)
    instead reads only mask embeddings, attends bidirectionally among the caption's positions and
    predicts every token at once (CapPa); evaluation mode always uses the autoregressive loss.

    Loss dict: ``loss`` (label-smoothed token CE, mean over tokens), ``token_acc`` (argmax accuracy
    over target tokens), ``ppl`` (exp of the mean unsmoothed token NLL).
    """

    def __init__(
        self,
        encoder_dim: int,
        vocab_size: int | None,
        decoder: dict[str, Any] | None = None,
        label_smoothing: float = 0.1,
        parallel_fraction: float = 0.0,
        special_ids: dict[str, int] | None = None,
    ) -> None:
        """``special_ids``: the tokenizer's ``{"pad", "bos", "eos"}`` ids, supplied by
        ``build_model`` (default: the SentencePiece ids 0/2/3)."""
        super().__init__()
        if vocab_size is None:
            raise ConfigError(
                f"{locate('objective')}objective: the captioning objective needs a tokenizer "
                "(vocab_size unknown)"
            )
        if not 0.0 <= label_smoothing < 1.0:
            raise ConfigError(
                f"{locate('objective.label_smoothing')}objective.label_smoothing: must be in "
                f"[0, 1), got {label_smoothing}"
            )
        if not 0.0 <= parallel_fraction <= 1.0:
            raise ConfigError(
                f"{locate('objective.parallel_fraction')}objective.parallel_fraction: must be in "
                f"[0, 1], got {parallel_fraction}"
            )
        self.decoder = DECODERS.build(
            decoder if decoder is not None else {"name": "transformer"},
            key="objective.decoder",
            vocab_size=vocab_size,
            encoder_dim=encoder_dim,
        )
        self.label_smoothing = label_smoothing
        self.parallel_fraction = parallel_fraction
        ids = {"pad": PAD_ID, "bos": BOS_ID, "eos": EOS_ID, **(special_ids or {})}
        self.bos_id, self.eos_id, self.pad_id = ids["bos"], ids["eos"], ids["pad"]
        mask_embedding = getattr(self.decoder, "mask_embedding", None)
        if parallel_fraction == 0 and isinstance(mask_embedding, nn.Parameter):
            mask_embedding.requires_grad_(False)  # unused: keep it out of the optimiser and DDP
        self._warned_truncation = False

    def _split_rows(self, b: int, device: torch.device) -> tuple[Tensor, Tensor]:
        """Row indices for autoregressive and parallel prediction."""
        n_par = 0
        if self.training and self.parallel_fraction > 0:
            n_par = min(b, int(self.parallel_fraction * b + float(torch.rand(()))))
        perm = torch.randperm(b, device=device) if n_par else torch.arange(b, device=device)
        return perm[n_par:], perm[:n_par]

    def forward(self, encoder_out: Tensor, encoder_lens: Tensor, batch: dict) -> dict[str, Tensor]:
        """encoder_out ``(B, T, D)``, encoder_lens ``(B,)``, batch with ``text_tokens (B, L)``
        (BOS … EOS, then PAD: the tokenizer's ids) and ``text_lens (B,)`` → loss dict."""
        tokens, text_lens = batch["text_tokens"], batch["text_lens"]
        inp, tgt = tokens[:, :-1], tokens[:, 1:]
        limit = getattr(self.decoder, "max_len", None)
        if limit is not None and inp.shape[1] > limit:
            if not self._warned_truncation:
                log.warning(
                    "captions of %d tokens are cut to the decoder's max_len %d",
                    inp.shape[1],
                    limit,
                )
                self._warned_truncation = True
            inp, tgt = inp[:, :limit], tgt[:, :limit]
        ar, par = self._split_rows(tokens.shape[0], tokens.device)
        parts = []
        if len(ar):
            # with parallel training on, route through the mask embedding too (all False), so
            # every parameter takes part in every step (DDP without find_unused_parameters)
            masked = torch.zeros_like(inp[ar], dtype=torch.bool) if self.parallel_fraction else None
            logits = self.decoder(inp[ar], encoder_out[ar], encoder_lens[ar], True, None, masked)
            parts.append((logits, tgt[ar]))
        if len(par):
            n_in = (text_lens[par] - 1).clamp(min=1, max=inp.shape[1])
            masked = torch.ones_like(inp[par], dtype=torch.bool)
            logits = self.decoder(
                inp[par], encoder_out[par], encoder_lens[par], False, n_in, masked
            )
            parts.append((logits, tgt[par]))
        loss = nll = correct = count = 0
        for logits, t in parts:
            out = smoothed_token_ce(
                logits.flatten(0, 1), t.flatten(), self.label_smoothing, self.pad_id
            )
            loss, nll = loss + out[0], nll + out[1]
            correct, count = correct + out[2], count + out[3]
        n = count.clamp(min=1)
        return {
            "loss": loss / n,
            "token_acc": correct.float() / n,
            "ppl": torch.exp(nll / n),
        }

    def generate(
        self,
        encoder_out: Tensor,
        lens: Tensor,
        tokenizer: Any = None,
        method: str = "beam",
        **opts: Any,
    ) -> list[str] | list[list[int]]:
        """Captions for ``(B, T, D)`` / ``(B,)``: strings with ``tokenizer``, else token-id lists.

        ``method``: ``greedy``, ``beam`` or ``nucleus``; ``opts`` go to that function in
        :mod:`toolkit.decoders.generation` (``max_len``, ``beam_size``, ``length_penalty``,
        ``top_p``, ``temperature``, ``seed``, ...).
        """
        if tokenizer is not None:
            return generate_text(self.decoder, encoder_out, lens, tokenizer, method, **opts)
        opts.setdefault("pad_id", self.pad_id)
        return generate(self.decoder, encoder_out, lens, self.bos_id, self.eos_id, method, **opts)
