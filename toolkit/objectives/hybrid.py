"""Hybrid (CoCa-style) objective: a contrastive and a captioning objective on the shared encoder."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from toolkit.config import ConfigError, locate
from toolkit.registry import ALL_REGISTRIES, OBJECTIVES

# constructor arguments that objectives pass to their nested plugins in code, not YAML
_CODE_ARGS = {"vocab_size", "encoder_dim", "input_dim", "special_ids"}


def _sub_block(cfg: Mapping[str, Any] | None, default: str, key: str) -> dict[str, Any]:
    """``{name (default ``default``), **kwargs}`` of a part, checked with ``key`` in errors.

    Nested plugin blocks (e.g. ``text_encoder``, ``decoder``: a key named like a plugin kind) are
    checked here too, so their errors name ``key.<nested>`` rather than the part's own
    ``objective.<nested>``.
    """
    if cfg is None:
        cfg = {}
    if not isinstance(cfg, Mapping):
        raise ConfigError(f"{locate(key)}{key}: expected a mapping of the part's keys")
    block = {"name": default, **cfg}
    OBJECTIVES.check(block, key, supplied={"encoder_dim", "vocab_size", "special_ids"})
    for k, v in block.items():
        if k in ALL_REGISTRIES and isinstance(v, Mapping):
            ALL_REGISTRIES[k].check(v, f"{key}.{k}", supplied=_CODE_ARGS)
    return block


@OBJECTIVES.register("hybrid")
class Hybrid(nn.Module):
    """``contrastive_weight · contrastive + captioning_weight · captioning`` (CoCa, Yu et al. 2022).

    ``contrastive`` / ``captioning`` hold the keyword arguments of the two objectives (an optional
    ``name`` swaps in another registered objective); both read the same encoder output.
    Loss dict: ``loss``, ``loss_contrastive``, ``loss_captioning`` and each part's other metrics
    prefixed with ``contrastive_`` / ``captioning_``. ``embed_audio``/``embed_text`` come from the
    contrastive part (evaluation), ``generate`` from the captioning part.
    """

    def __init__(
        self,
        encoder_dim: int,
        vocab_size: int | None,
        contrastive: dict[str, Any],
        captioning: dict[str, Any] | None = None,
        contrastive_weight: float = 1.0,
        captioning_weight: float = 1.0,
        special_ids: dict[str, int] | None = None,
    ) -> None:
        super().__init__()
        weights = {"contrastive_weight": contrastive_weight, "captioning_weight": captioning_weight}
        for name, w in weights.items():
            if w < 0:
                full = f"objective.{name}"
                raise ConfigError(f"{locate(full)}{full}: must be >= 0, got {w}")
        parts = {}
        for part, cfg in (("contrastive", contrastive), ("captioning", captioning)):
            key = f"objective.{part}"
            parts[part] = OBJECTIVES.build(
                _sub_block(cfg, part, key),
                key,
                encoder_dim=encoder_dim,
                vocab_size=vocab_size,
                special_ids=special_ids,
            )
        self.contrastive = parts["contrastive"]
        self.captioning = parts["captioning"]
        self.contrastive_weight = contrastive_weight
        self.captioning_weight = captioning_weight

    def forward(self, encoder_out: Tensor, encoder_lens: Tensor, batch: dict) -> dict[str, Tensor]:
        """encoder_out ``(B, T, D)``, encoder_lens ``(B,)``, batch → loss dict (see class doc)."""
        out: dict[str, Tensor] = {}
        total: Tensor | float = 0.0
        for part, weight in (
            ("contrastive", self.contrastive_weight),
            ("captioning", self.captioning_weight),
        ):
            res = getattr(self, part)(encoder_out, encoder_lens, batch)
            total = total + weight * res["loss"]
            out[f"loss_{part}"] = res["loss"]
            out.update({f"{part}_{k}": v for k, v in res.items() if k != "loss"})
        return {"loss": total, **out}  # type: ignore[dict-item]

    def embed_audio(self, hidden: Tensor, lens: Tensor) -> Tensor:
        """Encoder output ``(B, T, D)`` → L2-normalised audio embeddings ``(B, E)``."""
        return self.contrastive.embed_audio(hidden, lens)

    def embed_text(self, tokens: Tensor, lens: Tensor) -> Tensor:
        """Token ids ``(B, L)`` → L2-normalised text embeddings ``(B, E)``."""
        return self.contrastive.embed_text(tokens, lens)

    def generate(self, encoder_out: Tensor, lens: Tensor, *args: Any, **opts: Any) -> Any:
        """Captions from the captioning part (see :meth:`Captioning.generate`)."""
        return self.captioning.generate(encoder_out, lens, *args, **opts)
