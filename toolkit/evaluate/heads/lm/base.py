"""The causal-LM interface the QA evaluator drives, and greedy decoding from embeddings.

A :class:`CausalLM` reads *embeddings*, not ids, so that other modalities (adapted audio frames)
can be spliced into a prompt: ``embed(ids (B, L)) -> (B, L, H)``, then
``forward(inputs_embeds (B, L, H), attention_mask (B, L)) -> logits (B, L, V)``. Sequences are
left-padded (``attention_mask`` False on padding); positions count valid tokens only, so a
sequence's logits do not depend on how much padding precedes it. ``step`` is the incremental
form with a cache (``attention_mask`` then covers the cached and the new positions).

The text side is ``tokenizer.encode(text) -> list[int]`` (no special tokens) and
``tokenizer.decode(ids) -> str`` (special tokens dropped), with ``bos_id`` (None when the model
has no start token), ``eos_id`` and ``pad_id`` on the LM.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import torch
from torch import Tensor, nn


class LMTokenizer(Protocol):
    """Text ↔ ids of a language model (no special tokens added or returned)."""

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...


class CausalLM(nn.Module):
    """Base class of language-model plugins (see the module docstring for the contract).

    Subclasses set ``hidden_size``, ``vocab_size``, ``tokenizer``, ``bos_id``, ``eos_id``,
    ``pad_id`` and ``max_len`` (longest sequence the positions allow), and implement
    :meth:`embed` and :meth:`step`. The default :meth:`step` (no real cache: the cache is the
    embeddings seen so far, re-run every call) is correct but slow; plugins override it.
    """

    hidden_size: int
    vocab_size: int
    tokenizer: LMTokenizer
    bos_id: int | None
    eos_id: int
    pad_id: int
    max_len: int = 10**9

    def embed(self, ids: Tensor) -> Tensor:
        """ids ``(B, L)`` long → input embeddings ``(B, L, H)``."""
        raise NotImplementedError

    def forward(self, inputs_embeds: Tensor, attention_mask: Tensor) -> Tensor:
        """inputs_embeds ``(B, L, H)``, attention_mask ``(B, L)`` bool (False = padding) →
        next-token logits ``(B, L, V)`` (causal: position ``t`` sees positions ``<= t``)."""
        return self.step(inputs_embeds, attention_mask, None)[0]

    def step(
        self, inputs_embeds: Tensor, attention_mask: Tensor, cache: Any = None
    ) -> tuple[Tensor, Any]:
        """Incremental forward: new embeddings ``(B, l, H)``, ``attention_mask (B, past + l)``
        and the cache of the ``past`` positions (None at the start) → logits ``(B, l, V)`` and
        the new cache."""
        new = inputs_embeds.shape[1]
        if cache is not None:
            inputs_embeds = torch.cat([cache, inputs_embeds], dim=1)
        logits = self._full_forward(inputs_embeds, attention_mask)
        return logits[:, -new:], inputs_embeds

    def _full_forward(self, inputs_embeds: Tensor, attention_mask: Tensor) -> Tensor:
        """Logits ``(B, L, V)`` of a whole sequence (what the default :meth:`step` re-runs)."""
        raise NotImplementedError(f"{type(self).__name__} implements neither step nor forward")

    def frozen(self) -> bool:
        """True when no parameter requires a gradient."""
        return not any(p.requires_grad for p in self.parameters())


def positions_from_mask(attention_mask: Tensor) -> Tensor:
    """``(B, L)`` bool mask → ``(B, L)`` long positions counting valid tokens only (0 on the
    left padding), so left padding never shifts a sequence's positions."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def left_pad(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[Tensor, Tensor]:
    """Id lists → left-padded ``(B, L)`` long ids and ``(B, L)`` bool mask (True = token)."""
    width = max(1, max(len(s) for s in seqs))
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros(len(seqs), width, dtype=torch.bool)
    for i, s in enumerate(seqs):
        if s:
            ids[i, width - len(s) :] = torch.tensor(list(s), dtype=torch.long)
            mask[i, width - len(s) :] = True
    return ids, mask


@torch.no_grad()
def greedy_generate(
    lm: CausalLM,
    prefix_embeds: Tensor,
    prefix_mask: Tensor,
    max_new_tokens: int,
    banned: Sequence[int] = (),
) -> list[list[int]]:
    """Greedy continuation of left-padded prompts given as embeddings.

    Args:
        prefix_embeds: ``(B, L, H)`` prompt embeddings (left padded).
        prefix_mask: ``(B, L)`` bool, False on padding.
        max_new_tokens: most tokens generated per row (EOS included).
        banned: ids never generated (e.g. pad, bos).

    Returns:
        One id list per row, EOS and everything after it left out.
    """
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    b = prefix_embeds.shape[0]
    device = prefix_embeds.device
    mask = prefix_mask.to(device)
    logits, cache = lm.step(prefix_embeds, mask, None)
    done = torch.zeros(b, dtype=torch.bool, device=device)
    out: list[Tensor] = []
    ban = torch.tensor(sorted({int(i) for i in banned if i != lm.eos_id}), device=device)
    for t in range(max_new_tokens):
        last = logits[:, -1].float()
        if ban.numel():
            last = last.index_fill(-1, ban, float("-inf"))
        nxt = last.argmax(-1).masked_fill(done, lm.eos_id)
        out.append(nxt)
        done |= nxt == lm.eos_id
        if bool(done.all()) or t == max_new_tokens - 1:
            break
        mask = torch.cat([mask, torch.ones(b, 1, dtype=torch.bool, device=device)], dim=1)
        logits, cache = lm.step(lm.embed(nxt[:, None]), mask, cache)
    ids = torch.stack(out, 1).tolist()
    return [row[: row.index(lm.eos_id)] if lm.eos_id in row else row for row in ids]
