"""Transformer text decoder: causal self-attention + cross-attention over the encoder frames.

``forward(tokens (B, L), enc (B, T, D_enc), enc_lens (B,)) -> logits (B, L, V)`` (teacher
forcing); :meth:`TransformerDecoder.init_cache` / :meth:`TransformerDecoder.step` decode
incrementally with a key/value cache (generation: :mod:`toolkit.decoders.generation`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from toolkit.layers import HeadedAttention, lengths_to_mask, sinusoidal_positions
from toolkit.registry import DECODERS


@dataclass
class DecoderCache:
    """Incremental-decoding state of a :class:`TransformerDecoder` for ``B`` rows.

    ``self_k``/``self_v``: per layer ``(B, H, t, Dh)`` keys/values of the ``t`` tokens fed so far
    (grown by :meth:`TransformerDecoder.step`); ``cross_k``/``cross_v``: per layer ``(B, H, T, Dh)``
    projections of the encoder frames (computed once); ``cross_mask``: ``(B, 1, 1, T)`` True on
    valid frames.
    """

    self_k: list[Tensor]
    self_v: list[Tensor]
    cross_k: list[Tensor]
    cross_v: list[Tensor]
    cross_mask: Tensor
    length: int = 0

    def reorder(self, index: Tensor) -> None:
        """Keep rows ``index`` ``(B',)`` (in that order) of every cached tensor (beam search)."""
        for lst in (self.self_k, self.self_v, self.cross_k, self.cross_v):
            for i, t in enumerate(lst):
                lst[i] = t.index_select(0, index)
        self.cross_mask = self.cross_mask.index_select(0, index)


class Attention(HeadedAttention):
    """Multi-head attention with separate query and key/value projections (self or cross;
    keys/values computed once by :meth:`keys_values` and cached by the caller)."""

    def __init__(self, dim: int, num_heads: int, dropout: float = 0.0) -> None:
        super().__init__(dim, num_heads, dropout)
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)

    def keys_values(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(B, T, D)`` → keys, values ``(B, H, T, Dh)``."""
        k, v = self.kv(x).chunk(2, dim=-1)
        return self.split_heads(k), self.split_heads(v)

    def forward(
        self, x: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None, causal: bool = False
    ) -> Tensor:
        """Queries from x ``(B, L, D)`` over k/v ``(B, H, S, Dh)``; mask broadcastable to
        ``(B, H, L, S)``, True where attention is allowed → ``(B, L, D)``."""
        return self.attend(self.split_heads(self.q(x)), k, v, mask, causal)


class DecoderLayer(nn.Module):
    """Self-attention, cross-attention and feed-forward blocks, each with a residual.

    ``norm_first``: pre-norm ``x + f(LN(x))``; otherwise post-norm ``LN(x + f(x))``.
    """

    def __init__(
        self, dim: int, num_heads: int, ff_dim: int, dropout: float, norm_first: bool
    ) -> None:
        super().__init__()
        self.self_attn = Attention(dim, num_heads, dropout)
        self.cross_attn = Attention(dim, num_heads, dropout)
        self.ff = nn.Sequential(
            nn.Linear(dim, ff_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(ff_dim, dim)
        )
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(dim) for _ in range(3))
        self.drop = nn.Dropout(dropout)
        self.norm_first = norm_first

    def forward(
        self,
        x: Tensor,
        cross_kv: tuple[Tensor, Tensor],
        cross_mask: Tensor,
        self_mask: Tensor | None = None,
        causal: bool = False,
        past: tuple[Tensor, Tensor] | None = None,
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """x ``(B, L, D)`` → ``(B, L, D)`` and this layer's self-attention keys/values
        ``(B, H, t + L, Dh)`` (``past`` ``(B, H, t, Dh)`` prepended)."""

        def self_attention(h: Tensor) -> tuple[Tensor, tuple[Tensor, Tensor]]:
            k, v = self.self_attn.keys_values(h)
            if past is not None:
                k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
            return self.self_attn(h, k, v, self_mask, causal), (k, v)

        if self.norm_first:
            y, kv = self_attention(self.norm1(x))
            x = x + self.drop(y)
            x = x + self.drop(self.cross_attn(self.norm2(x), *cross_kv, cross_mask))
            x = x + self.drop(self.ff(self.norm3(x)))
        else:
            y, kv = self_attention(x)
            x = self.norm1(x + self.drop(y))
            x = self.norm2(x + self.drop(self.cross_attn(x, *cross_kv, cross_mask)))
            x = self.norm3(x + self.drop(self.ff(x)))
        return x, kv


@DECODERS.register("transformer")
class TransformerDecoder(nn.Module):
    """Transformer decoder over token ids, cross-attending to all valid encoder frames.

    Token embeddings (scaled by ``sqrt(dim)``) + sinusoidal or learned positions → layers →
    (pre-norm: final LayerNorm) → logits via the tied embedding matrix or a separate linear
    layer, plus an output bias. The encoder output is linearly projected to ``dim`` when
    ``encoder_dim != dim``. A dedicated learned ``mask_embedding`` replaces the token embedding
    where ``masked`` is True (parallel, CapPa-style prediction).

    ``output_dim`` is the vocabulary size (the last dimension of the logits).
    """

    def __init__(
        self,
        vocab_size: int,
        encoder_dim: int,
        dim: int = 256,
        num_layers: int = 4,
        num_heads: int = 4,
        ff_dim: int = 1024,
        dropout: float = 0.1,
        positions: Literal["sinusoidal", "learned"] = "sinusoidal",
        max_len: int = 128,
        tie_embeddings: bool = True,
        norm_first: bool = True,
    ) -> None:
        super().__init__()
        if positions not in ("sinusoidal", "learned"):
            raise ValueError(f"positions must be 'sinusoidal' or 'learned', got {positions!r}")
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.vocab_size, self.dim, self.max_len = vocab_size, dim, max_len
        self.output_dim = vocab_size
        self.embed = nn.Embedding(vocab_size, dim)
        nn.init.normal_(self.embed.weight, std=dim**-0.5)
        self.mask_embedding = nn.Parameter(torch.randn(dim) * dim**-0.5)
        self.positions = positions
        if positions == "learned":
            self.pos = nn.Parameter(torch.randn(max_len, dim) * 0.02)
        else:
            self.register_buffer("pos", sinusoidal_positions(max_len, dim), persistent=False)
        self.enc_proj = nn.Linear(encoder_dim, dim) if encoder_dim != dim else nn.Identity()
        self.layers = nn.ModuleList(
            DecoderLayer(dim, num_heads, ff_dim, dropout, norm_first) for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(dim) if norm_first else nn.Identity()
        self.drop = nn.Dropout(dropout)
        self.out_proj = None if tie_embeddings else nn.Linear(dim, vocab_size, bias=False)
        self.out_bias = nn.Parameter(torch.zeros(vocab_size))

    # ------------------------------------------------------------------ pieces
    def _inputs(self, tokens: Tensor, offset: int = 0, masked: Tensor | None = None) -> Tensor:
        """Embedded tokens ``(B, L)`` at positions ``offset ..`` → ``(B, L, D)``."""
        end = offset + tokens.shape[1]
        if end > self.max_len:
            raise ValueError(
                f"decoder input of {end} positions exceeds the decoder's max_len {self.max_len}"
            )
        x = self.embed(tokens)
        if masked is not None:
            x = torch.where(masked[..., None], self.mask_embedding.to(x.dtype), x)
        return self.drop(x * math.sqrt(self.dim) + self.pos[offset:end].to(x.dtype))

    def _logits(self, h: Tensor) -> Tensor:
        h = self.norm(h)
        weight = self.embed.weight if self.out_proj is None else self.out_proj.weight
        return F.linear(h, weight, self.out_bias)

    def _memory(self, enc: Tensor, enc_lens: Tensor) -> tuple[Tensor, Tensor]:
        """Projected encoder output ``(B, T, D)`` and cross-attention mask ``(B, 1, 1, T)``.

        A row with no valid frame attends to frame 0 (never a fully masked softmax row).
        """
        mask = lengths_to_mask(enc_lens.clamp(min=1), enc.shape[1])
        return self.enc_proj(enc), mask[:, None, None, :]

    # ------------------------------------------------------------------ teacher forcing
    def forward(
        self,
        tokens: Tensor,
        enc: Tensor,
        enc_lens: Tensor,
        causal: bool = True,
        token_lens: Tensor | None = None,
        masked: Tensor | None = None,
    ) -> Tensor:
        """Logits ``(B, L, V)`` for tokens ``(B, L)`` long given encoder output ``(B, T, D_enc)``
        with valid lengths ``(B,)``.

        causal: position ``i`` sees tokens ``<= i`` (right padding then never changes valid
        positions, so ``token_lens`` is not needed and is ignored). ``causal=False``: every
        position sees every valid token; ``token_lens`` ``(B,)`` masks padded keys.
        masked: ``(B, L)`` bool, True where the input is the mask embedding instead of the token.
        """
        x = self._inputs(tokens, 0, masked)
        mem, cross_mask = self._memory(enc, enc_lens)
        self_mask = None
        if not causal and token_lens is not None:
            self_mask = lengths_to_mask(token_lens.clamp(min=1), tokens.shape[1])[:, None, None]
        for layer in self.layers:
            x, _ = layer(x, layer.cross_attn.keys_values(mem), cross_mask, self_mask, causal)
        return self._logits(x)

    # ------------------------------------------------------------------ incremental decoding
    def init_cache(self, enc: Tensor, enc_lens: Tensor) -> DecoderCache:
        """Cache for decoding ``B`` rows over ``enc`` ``(B, T, D_enc)``: cross-attention keys and
        values are computed here, once."""
        mem, cross_mask = self._memory(enc, enc_lens)
        kv = [layer.cross_attn.keys_values(mem) for layer in self.layers]
        return DecoderCache([], [], [k for k, _ in kv], [v for _, v in kv], cross_mask)

    def step(self, tokens: Tensor, cache: DecoderCache) -> Tensor:
        """Feed the next tokens ``(B, l)`` (usually ``l = 1``) after the ``cache.length`` already
        fed; returns their logits ``(B, l, V)`` and appends their keys/values to ``cache``.

        Equals the matching positions of :meth:`forward` (causal) on the whole sequence.
        """
        t, n = cache.length, tokens.shape[1]
        x = self._inputs(tokens, t)
        self_mask = None
        if n > 1:  # causal among the new tokens, all of the past visible
            q_pos = torch.arange(t, t + n, device=tokens.device)
            self_mask = torch.arange(t + n, device=tokens.device)[None, :] <= q_pos[:, None]
        first = not cache.self_k
        for i, layer in enumerate(self.layers):
            past = None if first else (cache.self_k[i], cache.self_v[i])
            x, (k, v) = layer(
                x, (cache.cross_k[i], cache.cross_v[i]), cache.cross_mask, self_mask, False, past
            )
            if first:
                cache.self_k.append(k)
                cache.self_v.append(v)
            else:
                cache.self_k[i], cache.self_v[i] = k, v
        cache.length = t + n
        return self._logits(x)
