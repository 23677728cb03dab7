"""AudioModel = frontend → (augmentation) → encoder → objective, built from a config."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from toolkit.config import ConfigError
from toolkit.registry import AUGMENTATIONS, ENCODERS, FRONTENDS, OBJECTIVES, TOKENIZERS
from toolkit.weights import load_init, split_init_keys


class AudioModel(nn.Module):
    """The pretraining model. ``forward(batch) -> loss dict`` (the only thing the trainer sees).

    ``encode(audio (B,S), audio_lens (B,)) -> (hidden (B,T',D), lens (B,))`` is the frozen-encoder
    view used by evaluation and embedding export.

    ``grad_cache_chunk`` (objectives with ``project_audio`` / ``project_text`` /
    ``loss_from_projections``: ``contrastive``, ``siglip``): in training, the towers run over
    chunks of this many clips, each chunk under activation checkpointing, and the loss sees the
    whole batch's embeddings. Only the chunks' inputs and ``(B, E)`` embeddings stay in memory
    until backward, which recomputes one chunk at a time (with its random draws replayed): the
    batch — and the number of negatives — is no longer bounded by activation memory, for about
    one more forward of compute. Loss and gradients equal the unchunked ones. An encoder with a
    ``schedule`` method (Zipformer) gets one step's values for all chunks.
    """

    def __init__(
        self,
        frontend: nn.Module,
        encoder: nn.Module,
        objective: nn.Module,
        augmentation: nn.Module | None = None,
        grad_cache_chunk: int | None = None,
    ) -> None:
        super().__init__()
        self.frontend = frontend
        self.augmentation = augmentation
        self.encoder = encoder
        self.objective = objective
        if grad_cache_chunk is not None and grad_cache_chunk < 1:
            raise ValueError(f"grad_cache_chunk must be >= 1, got {grad_cache_chunk}")
        self.grad_cache_chunk = grad_cache_chunk

    def features(self, audio: Tensor, audio_lens: Tensor) -> tuple[Tensor, Tensor]:
        """Frontend (+ augmentation in training mode): ``(B, S)`` → ``(B, T, F)``, ``(B,)``."""
        feats, lens = self.frontend(audio, audio_lens)
        if self.augmentation is not None:
            feats = self.augmentation(feats, lens)
        return feats, lens

    def encode(self, audio: Tensor, audio_lens: Tensor, **encoder_kw: Any) -> tuple[Tensor, Tensor]:
        """Waveforms → encoder output ``(B, T', D)`` and lengths ``(B,)`` (``encoder_kw``: extra
        encoder arguments, e.g. a Zipformer's ``schedule``)."""
        feats, lens = self.features(audio, audio_lens)
        return self.encoder(feats, lens, **encoder_kw)

    def forward(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        k = self.grad_cache_chunk
        if k and self.training and torch.is_grad_enabled() and len(batch["audio"]) > k:
            return self._chunked_forward(batch, k)
        hidden, lens = self.encode(batch["audio"], batch["audio_lens"])
        return self.objective(hidden, lens, batch)

    def _chunked_forward(self, batch: dict[str, Any], k: int) -> dict[str, Tensor]:
        """Gradient caching (see the class docstring): chunks of ``k`` clips, checkpointed."""
        schedule = getattr(self.encoder, "schedule", None)
        values = schedule(batch["audio"].device) if schedule is not None else None
        audio, text = [], []
        for s in range(0, len(batch["audio"]), k):
            a, al = batch["audio"][s : s + k], batch["audio_lens"][s : s + k]
            audio.append(checkpoint(self._project_audio, a, al, values, use_reentrant=False))
            t, tl = batch["text_tokens"][s : s + k], batch["text_lens"][s : s + k]
            text.append(checkpoint(self.objective.project_text, t, tl, use_reentrant=False))
        return self.objective.loss_from_projections(torch.cat(audio), torch.cat(text))

    def _project_audio(self, audio: Tensor, audio_lens: Tensor, schedule: Any) -> Tensor:
        """One chunk: waveforms → pre-normalisation audio embeddings ``(b, E)``."""
        kw = {} if schedule is None else {"schedule": schedule}
        return self.objective.project_audio(*self.encode(audio, audio_lens, **kw))


def build_tokenizer(cfg: dict[str, Any]) -> Any:
    """The tokenizer named by ``cfg["tokenizer"]``."""
    if not cfg.get("tokenizer"):
        raise ConfigError("tokenizer: section missing (e.g. {name: sentencepiece, model: ...})")
    return TOKENIZERS.build(cfg["tokenizer"], key="tokenizer")


def build_model(
    cfg: dict[str, Any], tokenizer: Any = None, init_weights: bool = True
) -> AudioModel:
    """Build the model from the plugin sections of a (validated) config.

    ``encoder.init_from`` (docs/init_from.md) loads the encoder's initial weights after building;
    ``init_weights=False`` skips that (when a trained checkpoint is loaded next anyway).
    """
    for sec in ("frontend", "encoder", "objective"):
        if not cfg.get(sec):
            raise ConfigError(f"{sec}: section missing")
    frontend = FRONTENDS.build(cfg["frontend"], key="frontend")
    aug = cfg.get("augmentation")
    augmentation = AUGMENTATIONS.build(aug, key="augmentation") if aug else None
    enc_cfg, init = split_init_keys(cfg["encoder"], "encoder")
    encoder = ENCODERS.build(enc_cfg, key="encoder", input_dim=frontend.output_dim)
    report = None
    if init is not None and init_weights:
        report = load_init(
            encoder,
            init.path,
            key_map=init.key_map,
            strict=init.strict,
            config_key="encoder.init_from",
        )
    vocab = getattr(tokenizer, "vocab_size", None)
    ids = {k: getattr(tokenizer, f"{k}_id", None) for k in ("pad", "bos", "eos")}
    special = {k: v for k, v in ids.items() if v is not None} or None
    obj_cfg = dict(cfg["objective"])
    chunk = obj_cfg.pop("grad_cache_chunk", None)
    objective = OBJECTIVES.build(
        obj_cfg,
        key="objective",
        encoder_dim=encoder.output_dim,
        vocab_size=vocab,
        special_ids=special,
    )
    if chunk is not None:
        check_grad_cache(chunk, obj_cfg.get("name"), frontend, augmentation, encoder, objective)
    model = AudioModel(frontend, encoder, objective, augmentation, grad_cache_chunk=chunk)
    model.init_report = report  # what encoder.init_from loaded (None without it)
    return model


def check_grad_cache(
    chunk: Any,
    objective_name: str | None,
    frontend: nn.Module,
    augmentation: nn.Module | None,
    encoder: nn.Module,
    objective: nn.Module,
) -> None:
    """ConfigError unless ``objective.grad_cache_chunk`` can work with these modules: a positive
    int, an objective split into towers and a loss (whose loss is not hidden in ``forward``), and
    no module normalising with batch statistics."""
    needs = ("project_audio", "project_text", "loss_from_projections")
    if not all(hasattr(objective, n) for n in needs):
        raise ConfigError(
            f"objective.grad_cache_chunk: objective {objective_name!r} does not split "
            f"into towers and a loss ({', '.join(needs)}); supported: contrastive, siglip"
        )
    if not isinstance(chunk, int) or isinstance(chunk, bool) or chunk < 1:
        raise ConfigError(f"objective.grad_cache_chunk: a positive integer, got {chunk!r}")
    mro = type(objective).__mro__
    owner = {a: next(c for c in mro if a in c.__dict__) for a in ("forward", needs[2])}
    if mro.index(owner["forward"]) < mro.index(owner[needs[2]]):
        raise ConfigError(
            f"objective.grad_cache_chunk: {type(objective).__name__} overrides forward but "
            f"not loss_from_projections, which the chunked path calls instead of forward; "
            f"move its loss into loss_from_projections"
        )
    parts = {
        "frontend": frontend,
        "augmentation": augmentation,
        "encoder": encoder,
        "objective": objective,
    }
    for part, module in parts.items():
        for name, sub in module.named_modules() if module is not None else ():
            if hasattr(sub, "running_mean"):  # batch statistics: per chunk, updated twice
                raise ConfigError(
                    f"objective.grad_cache_chunk: {part}.{name} ({type(sub).__name__}) "
                    f"normalises with batch statistics, which would be computed per chunk "
                    f"and updated again in the recomputation; use it without "
                    f"grad_cache_chunk (or an encoder without batch norm)"
                )
