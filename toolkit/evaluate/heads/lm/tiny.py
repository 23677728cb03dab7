"""``tiny``: a small decoder-only Transformer LM trained by the recipe itself (nothing downloaded).

The QA evaluator hands it the training text (the train split's captions and its QA questions
with their answers); :func:`pretrain_tiny_lm` trains it as a plain next-token model, and the
result is cached in the ``cache`` file so that every model of an evaluation (and later
evaluations on the same text) reuse it. The cache holds a fingerprint of the architecture, the
training options and the tokenised text: if any of them changes, the LM is retrained and the
file rewritten.

Tokens are the run's tokenizer (``vocab: run``, the SentencePiece model of stage 3, its BOS/EOS
stripped from ``encode``), lower-cased words (``vocab: word``) or characters (``vocab: char``);
word and character tables are built from the training text and saved in the cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from toolkit.config import ConfigError
from toolkit.evaluate.heads.fit import FitSchedule, fit_on_batches
from toolkit.evaluate.heads.lm.base import CausalLM, positions_from_mask
from toolkit.registry import LANGUAGE_MODELS
from toolkit.text.tokenizer import pad_ids

log = logging.getLogger(__name__)
CACHE_FORMAT = 1
# the pretraining defaults (grad_clip 1.0, weight_decay 0.01, seed 0: FitSchedule's)
PRETRAIN = FitSchedule(steps=600, batch_size=32, lr=2e-3, warmup_steps=50)


# ----------------------------------------------------------------------------- tokenizers
class CharTokenizer:
    """Characters ↔ ids: pad=0, bos=1, eos=2, unk=3, then the characters of ``chars``."""

    pad_id, bos_id, eos_id, unk_id = 0, 1, 2, 3
    specials = 4

    def __init__(self, chars: str) -> None:
        self.chars = "".join(sorted(set(chars)))
        self.index = {c: i + self.specials for i, c in enumerate(self.chars)}
        self.vocab_size = self.specials + len(self.chars)

    @classmethod
    def from_texts(cls, texts: Sequence[str]) -> CharTokenizer:
        """The table of every character in ``texts``."""
        return cls("".join(set("".join(texts))))

    def encode(self, text: str) -> list[int]:
        """Text → ids (unknown characters → ``unk_id``; no BOS/EOS)."""
        return [self.index.get(c, self.unk_id) for c in text]

    def decode(self, ids: Sequence[int]) -> str:
        """Ids (special ids dropped) → text."""
        return "".join(self.chars[int(i) - self.specials] for i in ids if int(i) >= self.specials)


class WordTokenizer:
    """Lower-cased words and punctuation marks ↔ ids: pad=0, bos=1, eos=2, unk=3, then the
    words of ``words`` (``decode`` joins with spaces, no space before punctuation)."""

    pad_id, bos_id, eos_id, unk_id = 0, 1, 2, 3
    specials = 4
    _split = re.compile(r"\w+|[^\w\s]")

    def __init__(self, words: Sequence[str]) -> None:
        self.words = sorted(set(words))
        self.index = {w: i + self.specials for i, w in enumerate(self.words)}
        self.vocab_size = self.specials + len(self.words)

    @classmethod
    def split(cls, text: str) -> list[str]:
        return cls._split.findall(text.lower())

    @classmethod
    def from_texts(cls, texts: Sequence[str]) -> WordTokenizer:
        """The table of every word in ``texts``."""
        return cls([w for t in texts for w in cls.split(t)])

    def encode(self, text: str) -> list[int]:
        """Text → ids (unknown words → ``unk_id``; no BOS/EOS)."""
        return [self.index.get(w, self.unk_id) for w in self.split(text)]

    def decode(self, ids: Sequence[int]) -> str:
        """Ids (special ids dropped) → text."""
        words = [self.words[int(i) - self.specials] for i in ids if int(i) >= self.specials]
        return re.sub(r" ([^\w\s])", r"\1", " ".join(words))


class RunTokenizer:
    """The run's tokenizer (``encode -> [BOS, ..., EOS]``) without its BOS/EOS."""

    def __init__(self, tokenizer: Any) -> None:
        self.tok = tokenizer
        self.pad_id = int(getattr(tokenizer, "pad_id", 0))
        self.bos_id = int(tokenizer.bos_id)
        self.eos_id = int(tokenizer.eos_id)
        self.vocab_size = int(tokenizer.vocab_size)

    def encode(self, text: str) -> list[int]:
        ids = list(self.tok.encode(text))
        if ids and ids[0] == self.bos_id:
            ids = ids[1:]
        if ids and ids[-1] == self.eos_id:
            ids = ids[:-1]
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        return self.tok.decode([int(i) for i in ids])


VOCABS: dict[str, Any] = {"run": RunTokenizer, "word": WordTokenizer, "char": CharTokenizer}


# ----------------------------------------------------------------------------- model
class _Block(nn.Module):
    """Pre-norm causal self-attention + GELU MLP, with a (key, value) cache."""

    def __init__(self, dim: int, num_heads: int, ff_dim: int, dropout: float) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, ff_dim), nn.GELU(), nn.Linear(ff_dim, dim))
        self.drop = nn.Dropout(dropout)

    def forward(
        self, x: Tensor, mask: Tensor, past: tuple[Tensor, Tensor] | None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """x ``(B, l, D)``; mask ``(B, 1, l, past + l)`` bool (True = may attend)."""
        b, n, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, self.num_heads, -1).unbind(2)
        q, k, v = (z.transpose(1, 2) for z in (q, k, v))  # (B, H, l, Dh)
        if past is not None:
            k, v = torch.cat([past[0], k], 2), torch.cat([past[1], v], 2)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = x + self.drop(self.proj(y.transpose(1, 2).reshape(b, n, d)))
        return x + self.drop(self.ff(self.norm2(x))), (k, v)


class TinyTransformerLM(nn.Module):
    """Token + learned position embeddings, ``num_layers`` pre-norm causal blocks, final norm,
    output head tied to the token embedding."""

    def __init__(
        self,
        vocab_size: int,
        dim: int = 128,
        num_layers: int = 2,
        num_heads: int = 4,
        ff_dim: int = 512,
        max_len: int = 256,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ConfigError(f"language_model.dim {dim} is not divisible by num_heads {num_heads}")
        self.tok_emb = nn.Embedding(vocab_size, dim)
        self.pos_emb = nn.Embedding(max_len, dim)
        self.blocks = nn.ModuleList(
            _Block(dim, num_heads, ff_dim, dropout) for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(dim)
        self.max_len = max_len
        nn.init.normal_(self.tok_emb.weight, std=0.02)
        nn.init.normal_(self.pos_emb.weight, std=0.02)

    def step(
        self, x: Tensor, attention_mask: Tensor, cache: list[tuple[Tensor, Tensor]] | None
    ) -> tuple[Tensor, list[tuple[Tensor, Tensor]]]:
        """x ``(B, l, D)`` embeddings, attention_mask ``(B, past + l)`` → logits ``(B, l, V)``."""
        n, total = x.shape[1], attention_mask.shape[1]
        pos = positions_from_mask(attention_mask)[:, total - n :].clamp(max=self.max_len - 1)
        x = x + self.pos_emb(pos)
        q_idx = torch.arange(total - n, total, device=x.device)[:, None]
        k_idx = torch.arange(total, device=x.device)[None, :]
        # causal and not padding; a position always sees itself (no empty row on the padding)
        mask = ((k_idx <= q_idx)[None] & attention_mask[:, None, :]) | (k_idx == q_idx)[None]
        mask = mask[:, None]
        new_cache = []
        for i, block in enumerate(self.blocks):
            x, kv = block(x, mask, None if cache is None else cache[i])
            new_cache.append(kv)
        return self.norm(x) @ self.tok_emb.weight.T, new_cache


# ----------------------------------------------------------------------------- pretraining
def pretrain_tiny_lm(
    model: TinyTransformerLM,
    sequences: Sequence[Sequence[int]],
    fit: FitSchedule = PRETRAIN,
    pad_id: int = 0,
    device: torch.device | str = "cpu",
) -> list[float]:
    """Next-token training of ``model`` on id ``sequences`` (each ``[BOS, ..., EOS]``, cut to
    ``model.max_len``); AdamW, linear warm-up then cosine decay to 1 % of ``fit.lr``, seeded
    batches (fresh permutation per epoch). Returns the loss of every step."""
    seqs = [list(s)[: model.max_len] for s in sequences if len(s) >= 2]
    if not seqs:
        raise ValueError("no text to pretrain the tiny language model on")
    device = torch.device(device)
    model.to(device).train()

    def next_token_loss(batch: list[list[int]]) -> Tensor:
        ids, lens = pad_ids(batch, pad_id)  # right padding: the positions of a row start at 0
        ids = ids.to(device)
        mask = torch.arange(ids.shape[1], device=device)[None] < lens.to(device)[:, None]
        logits, _ = model.step(model.tok_emb(ids[:, :-1]), mask[:, :-1], None)
        target = ids[:, 1:].masked_fill(~mask[:, 1:], -100)
        return F.cross_entropy(logits.flatten(0, 1), target.flatten(), ignore_index=-100)

    losses = fit_on_batches(model, seqs, next_token_loss, fit)
    model.eval()
    return losses


def _fingerprint(options: dict[str, Any], sequences: Sequence[Sequence[int]]) -> str:
    h = hashlib.sha1(json.dumps(options, sort_keys=True).encode())
    for s in sequences:
        h.update(b",".join(str(i).encode() for i in s) + b";")
    return h.hexdigest()


# ----------------------------------------------------------------------------- the plugin
@LANGUAGE_MODELS.register("tiny")
class TinyLM(CausalLM):
    """A tiny causal LM pretrained on ``texts`` (supplied by the evaluator) and cached in
    ``cache``; frozen after pretraining (the QA evaluator may unfreeze it, ``train_lm``).

    ``tokenizer`` (the run's tokenizer) and ``texts`` are supplied by code. With ``vocab: run``
    and no run tokenizer, characters are used (logged).
    """

    def __init__(
        self,
        tokenizer: Any = None,
        texts: Sequence[str] | None = None,
        vocab: Literal["run", "word", "char"] = "run",
        dim: int = 128,
        num_layers: int = 2,
        num_heads: int = 4,
        ff_dim: int = 512,
        max_len: int = 256,
        dropout: float = 0.1,
        steps: int = 600,
        batch_size: int = 32,
        lr: float = 2e-3,
        seed: int = 0,
        cache: str | None = None,
        device: Literal["auto", "cpu", "cuda"] = "auto",
    ) -> None:
        super().__init__()
        if vocab not in VOCABS:
            raise ConfigError(f"language_model.vocab: one of {', '.join(VOCABS)}, got {vocab!r}")
        if steps < 1 or batch_size < 1 or max_len < 8:
            raise ConfigError("language_model: steps, batch_size >= 1 and max_len >= 8 needed")
        texts = [t.strip() for t in (texts or []) if t and t.strip()]
        cached = _load_cache(cache)
        if vocab == "run" and tokenizer is None:
            log.info("tiny LM: no run tokenizer supplied; using words")
            vocab = "word"
        if vocab == "run":
            self.tokenizer: Any = RunTokenizer(tokenizer)
        elif texts:
            self.tokenizer = VOCABS[vocab].from_texts(texts)
        elif cached is not None and cached.get("vocab") == vocab:
            self.tokenizer = VOCABS[vocab](cached["table"])
        else:
            raise ConfigError("language_model 'tiny': no training text and no cache to load")
        tok = self.tokenizer
        self.bos_id, self.eos_id, self.pad_id = tok.bos_id, tok.eos_id, tok.pad_id
        self.vocab_size, self.hidden_size, self.max_len = tok.vocab_size, dim, max_len
        arch = dict(
            vocab_size=tok.vocab_size,
            dim=dim,
            num_layers=num_layers,
            num_heads=num_heads,
            ff_dim=ff_dim,
            max_len=max_len,
            dropout=dropout,
        )
        dev = torch.device(
            ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        )
        with torch.random.fork_rng(devices=[dev.index or 0] if dev.type == "cuda" else []):
            torch.manual_seed(seed)  # the same weights for the same seed, whoever builds it
            self.model = TinyTransformerLM(**arch)
            train_opts = dict(steps=steps, batch_size=batch_size, lr=lr, seed=seed)
            sequences = [[tok.bos_id, *tok.encode(t), tok.eos_id] for t in texts]
            options = {"format": CACHE_FORMAT, "vocab": vocab, **arch, **train_opts}
            fingerprint = _fingerprint(options, sequences) if texts else None
            if cached is not None and (fingerprint is None or cached["fingerprint"] == fingerprint):
                try:
                    self.model.load_state_dict(cached["model"])
                except RuntimeError as e:
                    raise ConfigError(
                        f"language_model.cache: {cache} does not fit this tiny LM "
                        f"(vocabulary or architecture changed; delete it): {e}"
                    ) from e
                log.info("tiny LM: loaded from %s", cache)
            elif not texts:
                raise ConfigError("language_model 'tiny': no training text and no cache to load")
            else:
                if cached is not None:
                    log.info("tiny LM: %s was trained on other text or options; retraining", cache)
                t0 = time.perf_counter()
                fit = replace(PRETRAIN, steps=steps, batch_size=batch_size, lr=lr, seed=seed)
                losses = pretrain_tiny_lm(self.model, sequences, fit, tok.pad_id, dev)
                self.model.cpu()
                tail = sum(losses[-max(1, steps // 10) :]) / len(losses[-max(1, steps // 10) :])
                log.info(
                    "tiny LM: %d params, %d texts, %d steps: loss %.3f → %.3f (ppl %.1f), %.1f s",
                    sum(p.numel() for p in self.model.parameters()),
                    len(sequences),
                    steps,
                    losses[0],
                    tail,
                    math.exp(min(50.0, tail)),
                    time.perf_counter() - t0,
                )
                self.pretrain_losses = losses
                if cache:
                    _save_cache(cache, self.model, fingerprint, tok)
        self.model.eval()
        self.requires_grad_(False)

    def embed(self, ids: Tensor) -> Tensor:
        """ids ``(B, L)`` → ``(B, L, dim)``."""
        return self.model.tok_emb(ids)

    def step(
        self, inputs_embeds: Tensor, attention_mask: Tensor, cache: Any = None
    ) -> tuple[Tensor, Any]:
        """See :meth:`CausalLM.step`; the cache is the per-layer (key, value) list."""
        return self.model.step(inputs_embeds, attention_mask.bool(), cache)


def _load_cache(path: str | None) -> dict[str, Any] | None:
    from toolkit.weights import load_weights_only

    if not path or not Path(path).is_file():
        return None
    try:
        state = load_weights_only(Path(path))
    except Exception as e:  # a truncated or foreign file: retrain rather than crash
        log.warning("tiny LM: cannot read cache %s (%s); retraining", path, e)
        return None
    if not isinstance(state, dict) or state.get("format") != CACHE_FORMAT:
        log.warning("tiny LM: %s is not a tiny-LM cache of format %d; ignored", path, CACHE_FORMAT)
        return None
    return state


def _save_cache(path: str, model: nn.Module, fingerprint: str | None, tok: Any) -> None:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    state: dict[str, Any] = {
        "format": CACHE_FORMAT,
        "fingerprint": fingerprint,
        "model": model.state_dict(),
    }
    if isinstance(tok, CharTokenizer):
        state["vocab"], state["table"] = "char", tok.chars
    elif isinstance(tok, WordTokenizer):
        state["vocab"], state["table"] = "word", tok.words
    tmp = out.with_name(out.name + ".tmp")
    torch.save(state, tmp)
    tmp.replace(out)
    log.info("tiny LM: cached in %s", out)
