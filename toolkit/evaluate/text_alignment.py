"""The ``retrieval_probe`` evaluator: audio–text alignment learned on top of a FROZEN encoder.

Every model (contrastive- or captioning-pretrained, random init, even the log-mel baseline) gets
the same protocol, so their retrieval scores are comparable whether or not the model has a text
tower of its own:

1. Audio side: the train split's cached frame-level encoder outputs (``extra["frames"]``,
   ``(T_i, D)`` per clip; the encoder is never run again) are standardised per channel with the
   train frames' mean / std, pooled over the valid frames (masked ``mean``, or ``attention``
   pooling with one learned query per head) and projected to ``embed_dim``
   (:func:`~toolkit.objectives.contrastive.projection_head`: 1 = linear, 2 = MLP).
2. Text side: a FRESH text tower (a :data:`~toolkit.registry.TEXT_ENCODERS` block over the run's
   tokenizer, default a small transformer) + a projection to ``embed_dim``.
3. Both embeddings are L2-normalised; symmetric InfoNCE with a learnable temperature is
   minimised for ``steps`` AdamW steps on the train split's (clip, caption) pairs: every batch
   holds ``batch_size`` distinct clips (a seeded permutation of the clips, renewed every epoch),
   each with one of its captions drawn at random, so a clip is never its own negative.
4. The ``split`` (test) clips are retrieved with the multi-caption protocol of AudioCaps /
   Clotho (:func:`~toolkit.evaluate.retrieval.retrieval_metrics`): every caption is a text
   query whose target is its clip, and an audio query is a hit when ANY of its captions is
   retrieved. Rows: R@1/5/10, mAP@10 (percent) and medR / meanR (ranks, lower is better) for
   both directions, group ``retrieval (frozen encoder)`` (``..., attention pool)`` for
   attention pooling).

A model without frames (``logmel_stats``) uses its pooled vector as a single frame
(``pooled_fallback``). The run is deterministic on one device for a given ``seed`` and leaves
the caller's RNG streams alone. See docs/evaluation_alignment.md.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from toolkit.config import ConfigError
from toolkit.evaluate.captioning import pad_frames
from toolkit.evaluate.embeddings import EmbeddingSet
from toolkit.evaluate.heads.fit import FitSchedule, adamw_warmup_cosine, optimizer_step
from toolkit.evaluate.heads.probe import Standardizer
from toolkit.evaluate.retrieval import caption_queries, retrieval_metrics, retrieval_rows
from toolkit.layers import AttentionPool, masked_mean, resolve_device
from toolkit.objectives.contrastive import projection_head, symmetric_info_nce
from toolkit.registry import EVALUATORS, TEXT_ENCODERS
from toolkit.text.tokenizer import pad_ids
from toolkit.train.optim import decay_groups

log = logging.getLogger(__name__)
Splits = dict[str, EmbeddingSet]

GROUP = "retrieval (frozen encoder)"
ATTENTION_GROUP = "retrieval (frozen encoder, attention pool)"
DEFAULT_TEXT_ENCODER: dict[str, Any] = {
    "name": "transformer",
    "dim": 256,
    "num_layers": 2,
    "num_heads": 4,
    "ff_dim": 1024,
    "max_len": 64,
    "dropout": 0.1,
}


# ----------------------------------------------------------------------------- model
class AlignmentHead(nn.Module):
    """The trained part: audio pooling + projection, a text tower + projection, and the
    learnable ``logit_scale`` (``1 / temperature``, clamped at ``max_logit_scale``)."""

    def __init__(
        self,
        audio_dim: int,
        vocab_size: int,
        text_encoder: dict[str, Any],
        embed_dim: int = 256,
        proj_layers: int = 2,
        audio_pooling: Literal["mean", "attention"] = "mean",
        attention_heads: int = 4,
        init_temperature: float = 0.07,
        learn_temperature: bool = True,
        max_logit_scale: float = 100.0,
    ) -> None:
        super().__init__()
        self.pool: nn.Module | None = (
            AttentionPool(audio_dim, attention_heads) if audio_pooling == "attention" else None
        )
        self.audio_proj = projection_head(audio_dim, embed_dim, proj_layers)
        self.text_encoder = TEXT_ENCODERS.build(
            text_encoder, "retrieval_probe.text_encoder", vocab_size=vocab_size
        )
        self.text_proj = projection_head(self.text_encoder.output_dim, embed_dim, proj_layers)
        self.logit_scale = nn.Parameter(
            torch.tensor(math.log(1.0 / init_temperature)), requires_grad=learn_temperature
        )
        self.max_log_scale = math.log(max_logit_scale)

    def scale(self) -> Tensor:
        """Clamped ``1 / temperature`` (scalar)."""
        return self.logit_scale.clamp(max=self.max_log_scale).exp()

    def embed_audio(self, frames: Tensor, lens: Tensor) -> Tensor:
        """Standardised frames ``(B, T, D)`` + ``(B,)`` → unit-norm ``(B, E)``."""
        pooled = self.pool(frames, lens) if self.pool is not None else masked_mean(frames, lens)
        return F.normalize(self.audio_proj(pooled), dim=-1)

    def embed_text(self, tokens: Tensor, lens: Tensor) -> Tensor:
        """Token ids ``(B, L)`` + ``(B,)`` → unit-norm ``(B, E)``."""
        return F.normalize(self.text_proj(self.text_encoder(tokens, lens)), dim=-1)


# ----------------------------------------------------------------------------- inputs
class AudioInputs:
    """Standardised audio inputs of one split. With ``pooled`` (parameter-free mean pooling),
    each clip is reduced once to its standardised mean frame (mean pooling commutes with the
    per-channel affine standardisation) and served as a one-frame clip; otherwise the frames
    are padded per batch."""

    def __init__(self, frames: Sequence[Tensor], norm: Standardizer, pooled: bool) -> None:
        self.frames, self.norm, self.pooled = frames, norm, pooled
        if pooled:
            means = torch.stack([f.float().sum(dim=0) / max(1, f.shape[0]) for f in frames])
            self.means = norm(means)

    def __len__(self) -> int:
        return len(self.frames)

    def batch(self, idx: Sequence[int], device: torch.device) -> tuple[Tensor, Tensor]:
        """``(B, T, D)`` float32 standardised frames and ``(B,)`` lengths of clips ``idx``."""
        if self.pooled:
            x = self.means[list(idx)][:, None, :].to(device)
            return x, torch.ones(len(idx), dtype=torch.long, device=device)
        x, lens = pad_frames([self.frames[i] for i in idx], device)
        mask = torch.arange(x.shape[1], device=device)[None, :] < lens[:, None]
        return self.norm(x) * mask[:, :, None], lens


@torch.no_grad()
def embed_split(
    head: AlignmentHead,
    audio: AudioInputs,
    clips: Sequence[int],
    texts: Sequence[Sequence[int]],
    batch_size: int,
    pad_id: int,
    device: torch.device,
) -> tuple[Tensor, Tensor]:
    """Unit-norm ``(len(clips), E)`` audio and ``(len(texts), E)`` text embeddings (eval mode)."""
    was = head.training
    head.eval()
    a = [
        head.embed_audio(*audio.batch(clips[s : s + batch_size], device)).float().cpu()
        for s in range(0, len(clips), batch_size)
    ]
    t = []
    for s in range(0, len(texts), batch_size):
        ids = texts[s : s + batch_size]
        tokens, lens = (x.to(device) for x in pad_ids(ids, pad_id))
        t.append(head.embed_text(tokens, lens).float().cpu())
    head.train(was)
    return torch.cat(a), torch.cat(t)


# ----------------------------------------------------------------------------- training
def train_alignment_head(
    head: AlignmentHead,
    audio: AudioInputs,
    captions: Sequence[Sequence[Sequence[int]]],
    fit: FitSchedule,
    pad_id: int = 0,
    device: torch.device | str = "cpu",
) -> list[float]:
    """Symmetric InfoNCE training of ``head`` on ``(clip, caption)`` pairs.

    ``captions[i]`` holds the token-id lists of clip ``i`` of ``audio`` (clips without captions
    are never drawn). Each step takes ``min(fit.batch_size, #clips)`` distinct clips from a
    seeded permutation (renewed every epoch) and one uniformly drawn caption of each. AdamW
    (decay on matrices only, betas 0.9/0.98), linear warm-up then cosine decay to 1 % of
    ``fit.lr``, gradient clipping. Returns the loss of every step.
    """
    pool = [i for i, caps in enumerate(captions) if caps]
    if len(pool) < 2:
        raise ValueError("retrieval_probe: need >= 2 captioned training clips")
    device = torch.device(device)
    head.to(device).train()
    groups = decay_groups(head, fit.weight_decay)
    opt, sched = adamw_warmup_cosine(groups, fit.lr, fit.warmup_steps, fit.steps)
    gen = torch.Generator().manual_seed(fit.seed)
    order: list[int] = []
    size = min(fit.batch_size, len(pool))
    losses = []
    for _ in range(fit.steps):
        clips: list[int] = []
        while len(clips) < size:
            if not order:
                order = [pool[j] for j in torch.randperm(len(pool), generator=gen).tolist()]
            c = order.pop()
            if c in clips:  # drawn again across an epoch boundary: keep it for later
                order.insert(0, c)
            else:
                clips.append(c)
        pick = [int(torch.randint(len(captions[c]), (1,), generator=gen)) for c in clips]
        ids = [captions[c][k] for c, k in zip(clips, pick)]
        tokens, lens = (x.to(device) for x in pad_ids(ids, pad_id))
        a = head.embed_audio(*audio.batch(clips, device))
        t = head.embed_text(tokens, lens)
        loss = symmetric_info_nce(a, t, head.scale())
        optimizer_step(loss, opt, sched, head.parameters(), fit.grad_clip)
        losses.append(float(loss.detach()))
    return losses


# ----------------------------------------------------------------------------- evaluator
@EVALUATORS.register("retrieval_probe")
class RetrievalProbe:
    """Frozen-encoder audio–text retrieval: a fresh text tower + projections trained with
    symmetric InfoNCE on the train split's cached frames and captions, then the ``split`` clips
    retrieved with every caption (see the module docstring). Rows: group
    ``retrieval (frozen encoder)`` (``retrieval (frozen encoder, attention pool)`` with
    ``audio_pooling: attention``, so both can run side by side), tasks ``audio→text`` / ``text→audio``, metrics ``R@K``,
    ``mAP@10``, ``medR``, ``meanR`` (the last two lower is better)."""

    needs = frozenset({"frames"})

    def __init__(
        self,
        tokenizer: Any = None,
        text_encoder: dict[str, Any] | None = None,
        embed_dim: int = 256,
        proj_layers: int = 2,
        audio_pooling: Literal["mean", "attention"] = "mean",
        attention_heads: int = 4,
        standardize: bool = True,
        steps: int = 2000,
        batch_size: int = 128,
        lr: float = 5e-4,
        weight_decay: float = 0.01,
        warmup_steps: int = 100,
        grad_clip: float | None = 1.0,
        init_temperature: float = 0.07,
        learn_temperature: bool = True,
        max_logit_scale: float = 100.0,
        seed: int = 0,
        eval_batch_size: int = 256,
        ks: Sequence[int] = (1, 5, 10),
        pooled_fallback: bool = True,
        split: str = "test",
        device: Literal["auto", "cpu", "cuda"] = "auto",
    ) -> None:
        key = "retrieval_probe"
        if tokenizer is None or getattr(tokenizer, "vocab_size", None) is None:
            raise ConfigError(f"{key}: needs the run's tokenizer (a tokenizer section)")
        if min(steps, batch_size, eval_batch_size, embed_dim, proj_layers) < 1:
            raise ConfigError(
                f"{key}: steps, batch_size, eval_batch_size, embed_dim, proj_layers must be >= 1"
            )
        if batch_size < 2:
            raise ConfigError(f"{key}.batch_size: InfoNCE needs >= 2, got {batch_size}")
        if audio_pooling not in ("mean", "attention"):
            raise ConfigError(f"{key}.audio_pooling: 'mean' or 'attention', got {audio_pooling!r}")
        if not (0 < init_temperature and max_logit_scale > 0 and lr > 0):
            raise ConfigError(f"{key}: init_temperature, max_logit_scale and lr must be > 0")
        if not ks or min(ks) < 1:
            raise ConfigError(f"{key}.ks: positive cut-offs, got {list(ks)}")
        self.text_encoder_cfg = dict(
            text_encoder if text_encoder is not None else DEFAULT_TEXT_ENCODER
        )
        TEXT_ENCODERS.check(self.text_encoder_cfg, f"{key}.text_encoder", ("vocab_size",))
        self.tokenizer = tokenizer
        self.head_kw: dict[str, Any] = dict(
            embed_dim=embed_dim,
            proj_layers=proj_layers,
            audio_pooling=audio_pooling,
            attention_heads=attention_heads,
            init_temperature=init_temperature,
            learn_temperature=learn_temperature,
            max_logit_scale=max_logit_scale,
        )
        self.standardize = standardize
        self.fit = FitSchedule(steps, batch_size, lr, weight_decay, warmup_steps, grad_clip, seed)
        self.eval_batch_size, self.ks = eval_batch_size, tuple(ks)
        self.pooled_fallback, self.split, self.device = pooled_fallback, split, device
        self.group = ATTENTION_GROUP if audio_pooling == "attention" else GROUP

    def _encode(self, captions: Sequence[Sequence[str]]) -> list[list[list[int]]]:
        return [[self.tokenizer.encode(c) for c in caps if c and c.strip()] for caps in captions]

    def _inputs(self, es: EmbeddingSet, norm: Standardizer | None, use_pooled: bool) -> AudioInputs:
        frames = [p[None] for p in es.pooled] if use_pooled else list(es.extra["frames"])
        dim = frames[0].shape[1]
        norm = norm or Standardizer(torch.zeros(dim), torch.ones(dim))
        return AudioInputs(frames, norm, self.head_kw["audio_pooling"] == "mean")

    def evaluate(
        self, head: AlignmentHead, audio: AudioInputs, es: EmbeddingSet, device: torch.device
    ) -> dict | None:
        """:func:`retrieval_metrics` of ``es`` (clips without captions left out), or None."""
        keep, texts, owner = caption_queries(es.captions)
        if not keep:
            return None
        ids = [self.tokenizer.encode(t) for t in texts]
        pad_id = getattr(self.tokenizer, "pad_id", 0)
        a, t = embed_split(head, audio, keep, ids, self.eval_batch_size, pad_id, device)
        return retrieval_metrics(a, t, owner, ks=self.ks)

    def __call__(self, model: str, splits: Splits, text_fn: Any = None) -> list[dict]:
        train, test = splits["train"], splits[self.split]
        use_pooled = train.extra.get("frames") is None or test.extra.get("frames") is None
        if use_pooled and not self.pooled_fallback:
            log.info("retrieval_probe: %s has no frame-level outputs; skipped", model)
            return []
        if use_pooled:
            log.info("retrieval_probe: %s has no frames; its pooled vectors are used", model)
        captions = self._encode(train.captions)
        num_clips = sum(bool(c) for c in captions)
        if num_clips < 2:
            log.warning("retrieval_probe: < 2 captioned train clips; skipped")
            return []
        t0 = time.perf_counter()
        device = resolve_device(self.device)
        train_frames = [p[None] for p in train.pooled] if use_pooled else train.extra["frames"]
        norm = Standardizer.fit(train_frames) if self.standardize else None
        pad_id = getattr(self.tokenizer, "pad_id", 0)
        devices = [device.index or 0] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):  # leave the caller's RNG streams alone
            torch.manual_seed(self.fit.seed)
            head = AlignmentHead(
                int(train_frames[0].shape[1]),
                self.tokenizer.vocab_size,
                self.text_encoder_cfg,
                **self.head_kw,
            )
            losses = train_alignment_head(
                head,
                self._inputs(train, norm, use_pooled),
                captions,
                self.fit,
                pad_id,
                device,
            )
        tail = losses[-max(1, len(losses) // 10) :]
        msg = f"train loss {losses[0]:.3f} → {sum(tail) / len(tail):.3f}"
        msg += f", temperature {1.0 / float(head.scale().detach()):.4f}"
        dev = splits.get("dev")
        if dev is not None and self.split != "dev" and (use_pooled or "frames" in dev.extra):
            dev_res = self.evaluate(head, self._inputs(dev, norm, use_pooled), dev, device)
            if dev_res is not None:
                msg += f"; dev R@1 a→t {dev_res['a2t_R@1']:.1f} t→a {dev_res['t2a_R@1']:.1f}"
        res = self.evaluate(head, self._inputs(test, norm, use_pooled), test, device)
        log.info(
            "retrieval_probe[%s]: %d clips, %d steps × %d on %s; %s; %.1f s",
            model,
            num_clips,
            self.fit.steps,
            min(self.fit.batch_size, num_clips),
            device,
            msg,
            time.perf_counter() - t0,
        )
        if res is None:
            log.warning("retrieval_probe: no %s clip has a caption; nothing to score", self.split)
            return []
        return retrieval_rows(model, self.group, res, self.ks)
