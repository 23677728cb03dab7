"""``hf``: a Hugging Face ``transformers`` causal LM (GPT-2, Llama, Qwen, ...) from a local folder.

``path`` is a directory written by ``save_pretrained`` (``config.json``, the weights and the
tokenizer files); every load passes ``local_files_only=True``, so nothing is ever downloaded.
``transformers`` is optional and imported only when the plugin is built (see
:mod:`toolkit.text.hf`). The LM is frozen by default (no gradients, eval mode).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import Tensor

from toolkit.config import ConfigError
from toolkit.evaluate.heads.lm.base import CausalLM, positions_from_mask
from toolkit.layers import FrozenPretrained
from toolkit.registry import LANGUAGE_MODELS
from toolkit.text.hf import check_model_dir, require_transformers

log = logging.getLogger(__name__)
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class HFLMTokenizer:
    """A Hugging Face tokenizer without special tokens: ``encode``/``decode``."""

    def __init__(self, tok: Any) -> None:
        self.tok = tok

    def encode(self, text: str) -> list[int]:
        return list(self.tok(text, add_special_tokens=False)["input_ids"])

    def decode(self, ids: Sequence[int]) -> str:
        return self.tok.decode([int(i) for i in ids], skip_special_tokens=True).strip()


@LANGUAGE_MODELS.register("hf")
class HFCausalLM(FrozenPretrained, CausalLM):
    """``AutoModelForCausalLM`` + ``AutoTokenizer`` of the local folder ``path``.

    ``freeze`` (default): no gradients and eval mode (dropout off). ``dtype``: the weights'
    dtype in memory. ``bos_id`` is the tokenizer's BOS (None if it has none); ``eos_id`` its EOS
    (required); ``pad_id`` its pad token, else the EOS.
    """

    def __init__(
        self,
        path: str,
        freeze: bool = True,
        dtype: Literal["float32", "bfloat16", "float16"] = "float32",
    ) -> None:
        super().__init__()
        transformers = require_transformers("language_model 'hf'")
        folder = check_model_dir(path, "language_model.path")
        if not (folder / "config.json").is_file():
            raise ConfigError(
                f"language_model.path: {path} has no config.json; give a folder written by "
                "save_pretrained (config.json, weights, tokenizer files)"
            )
        if dtype not in DTYPES:
            raise ConfigError(f"language_model.dtype: one of {', '.join(DTYPES)}, got {dtype!r}")
        try:
            tok = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        except (OSError, ValueError) as e:
            raise ConfigError(f"language_model.path: no usable tokenizer in {path}: {e}") from e
        try:
            self.model = transformers.AutoModelForCausalLM.from_pretrained(
                str(folder), local_files_only=True
            ).to(DTYPES[dtype])
        except (OSError, ValueError) as e:
            raise ConfigError(f"language_model.path: no causal LM in {path}: {e}") from e
        if tok.eos_token_id is None:
            raise ConfigError(f"language_model.path: the tokenizer in {path} has no EOS token")
        self.tokenizer = HFLMTokenizer(tok)
        self.bos_id = None if tok.bos_token_id is None else int(tok.bos_token_id)
        self.eos_id = int(tok.eos_token_id)
        self.pad_id = int(tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id)
        cfg = self.model.config
        self.hidden_size = int(self.model.get_input_embeddings().embedding_dim)
        self.vocab_size = int(self.model.get_output_embeddings().out_features)
        self.max_len = int(getattr(cfg, "max_position_embeddings", None) or 10**9)
        params = inspect.signature(self.model.forward).parameters
        self._positions = "position_ids" in params
        # newer transformers name the key/value cache argument ``cache`` (``past_key_values``
        # before)
        self._cache_arg = "cache" if "cache" in params else "past_key_values"
        self.set_frozen(freeze)

    def embed(self, ids: Tensor) -> Tensor:
        """ids ``(B, L)`` → the model's input embeddings ``(B, L, H)``."""
        return self.model.get_input_embeddings()(ids)

    def step(
        self, inputs_embeds: Tensor, attention_mask: Tensor, cache: Any = None
    ) -> tuple[Tensor, Any]:
        """See :meth:`CausalLM.step`; the cache is the model's key/value cache. Positions
        count valid tokens only (left padding does not shift them)."""
        n = inputs_embeds.shape[1]
        kwargs: dict[str, Any] = {}
        if self._positions:
            kwargs["position_ids"] = positions_from_mask(attention_mask)[:, -n:]
        dtype = self.model.get_input_embeddings().weight.dtype
        out = self.model(
            inputs_embeds=inputs_embeds.to(dtype),
            attention_mask=attention_mask.long(),
            use_cache=True,
            **{self._cache_arg: cache},
            **kwargs,
        )
        new_cache = getattr(out, "cache", None)
        if new_cache is None:
            new_cache = getattr(out, "past_key_values", None)
        return out.logits.float(), new_cache
