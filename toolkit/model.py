"""AudioModel = frontend → (augmentation) → encoder → objective, built from a config."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from toolkit.config import ConfigError
from toolkit.registry import AUGMENTATIONS, ENCODERS, FRONTENDS, OBJECTIVES, TOKENIZERS
from toolkit.train.init_from import load_init, split_init_keys


class AudioModel(nn.Module):
    """The pretraining model. ``forward(batch) -> loss dict`` (the only thing the trainer sees).

    ``encode(audio (B,S), audio_lens (B,)) -> (hidden (B,T',D), lens (B,))`` is the frozen-encoder
    view used by evaluation and embedding export.
    """

    def __init__(
        self,
        frontend: nn.Module,
        encoder: nn.Module,
        objective: nn.Module,
        augmentation: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.frontend = frontend
        self.augmentation = augmentation
        self.encoder = encoder
        self.objective = objective

    def features(self, audio: Tensor, audio_lens: Tensor) -> tuple[Tensor, Tensor]:
        """Frontend (+ augmentation in training mode): ``(B, S)`` → ``(B, T, F)``, ``(B,)``."""
        feats, lens = self.frontend(audio, audio_lens)
        if self.augmentation is not None:
            feats = self.augmentation(feats, lens)
        return feats, lens

    def encode(self, audio: Tensor, audio_lens: Tensor) -> tuple[Tensor, Tensor]:
        """Waveforms → encoder output ``(B, T', D)`` and lengths ``(B,)``."""
        feats, lens = self.features(audio, audio_lens)
        return self.encoder(feats, lens)

    def forward(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        hidden, lens = self.encode(batch["audio"], batch["audio_lens"])
        return self.objective(hidden, lens, batch)


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
    if init is not None and init_weights:
        load_init(
            encoder,
            init.path,
            key_map=init.key_map,
            strict=init.strict,
            config_key="encoder.init_from",
        )
    vocab = getattr(tokenizer, "vocab_size", None)
    ids = {k: getattr(tokenizer, f"{k}_id", None) for k in ("pad", "bos", "eos")}
    special = {k: v for k, v in ids.items() if v is not None} or None
    objective = OBJECTIVES.build(
        cfg["objective"],
        key="objective",
        encoder_dim=encoder.output_dim,
        vocab_size=vocab,
        special_ids=special,
    )
    return AudioModel(frontend, encoder, objective, augmentation)
