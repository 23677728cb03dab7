"""Hugging Face text towers (BERT, RoBERTa, ...) and their tokenizers, loaded from a local folder.

``transformers`` is an optional extra (``pip install -e '.[hf]'``): this module imports it only
when a plugin is built, so ``import toolkit`` never needs it. Nothing is downloaded: ``path`` is
a local directory as written by ``save_pretrained`` (``config.json``, the weights, the
tokenizer files) and every load passes ``local_files_only=True``.

The text tower reads the ids of its own tokenizer, so a config that uses
``objective.text_encoder: {name: hf, path: DIR}`` also sets ``tokenizer: {name: hf, path: DIR}``
(the same folder): the dataset then puts that tokenizer's ids (``[CLS] … [SEP]`` for BERT,
``<s> … </s>`` for RoBERTa, right-padded with its pad id) into ``text_tokens``. See
docs/text_encoders.md.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from toolkit.config import ConfigError
from toolkit.layers import FrozenPretrained, lengths_to_mask
from toolkit.registry import TEXT_ENCODERS, TOKENIZERS
from toolkit.text.tokenizer import pad_ids

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'transformers>=4.40' (or: pip install -e '.[hf]')"


def require_transformers(what: str) -> Any:
    """The ``transformers`` module, or a :class:`ConfigError` saying how to install it."""
    try:
        import transformers
    except ImportError as e:
        raise ConfigError(
            f"{what} needs the optional package 'transformers', which is not installed: "
            f"{INSTALL_HINT}"
        ) from e
    return transformers


def check_model_dir(path: str, key: str) -> Path:
    """``path`` as a :class:`Path` if it is a local directory, else a clear :class:`ConfigError`."""
    p = Path(path).expanduser()
    if not p.is_dir():
        raise ConfigError(
            f"{key}: {path} is not a local directory. Give the folder of a Hugging Face model "
            "saved with save_pretrained (config.json, weights, tokenizer files); models are "
            "never downloaded from the hub."
        )
    return p


def max_positions(config: Any) -> int:
    """Longest input the model's position table allows (RoBERTa-style models start their
    positions after the pad id, so they lose ``pad_token_id + 1`` of them)."""
    n = int(getattr(config, "max_position_embeddings", 512))
    kind = str(getattr(config, "model_type", ""))
    if "roberta" in kind or kind == "camembert":
        n -= int(getattr(config, "pad_token_id", 1) or 0) + 1
    return n


@TOKENIZERS.register("hf")
class HFTokenizer:
    """A Hugging Face tokenizer from a local folder, with the interface of the SentencePiece
    tokenizer: ``encode``, ``encode_batch -> (ids (B, L), lens (B,))``, ``decode``,
    ``vocab_size``, ``pad_id``/``bos_id``/``eos_id``.

    ``bos_id``/``eos_id`` are the model's sequence start/end tokens (BERT ``[CLS]``/``[SEP]``,
    RoBERTa ``<s>``/``</s>``); ``encode`` adds them as the model expects.
    """

    def __init__(self, path: str, max_len: int = 64) -> None:
        transformers = require_transformers("tokenizer 'hf'")
        folder = check_model_dir(path, "tokenizer.path")
        if max_len < 2:
            raise ConfigError(f"tokenizer.max_len: must be >= 2 (start + end token), got {max_len}")
        self.tok = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        self.path = str(folder)
        self.max_len = max_len
        self.vocab_size = len(self.tok)
        start = (
            self.tok.bos_token_id if self.tok.bos_token_id is not None else self.tok.cls_token_id
        )
        end = self.tok.eos_token_id if self.tok.eos_token_id is not None else self.tok.sep_token_id
        if self.tok.pad_token_id is None or start is None or end is None:
            raise ConfigError(
                f"tokenizer.path: the tokenizer in {path} lacks a pad, start (bos/cls) or end "
                "(eos/sep) token; the 'hf' tokenizer supports BERT/RoBERTa-style tokenizers"
            )
        self.pad_id, self.bos_id, self.eos_id = int(self.tok.pad_token_id), int(start), int(end)

    def encode(self, text: str) -> list[int]:
        """One caption → ids with the model's start/end tokens, truncated to ``max_len``."""
        return list(self.tok(text, truncation=True, max_length=self.max_len)["input_ids"])

    def encode_batch(self, texts: Sequence[str]) -> tuple[Tensor, Tensor]:
        """Captions → right-padded ``(B, L)`` long ids (``pad_id``) and ``(B,)`` lengths."""
        seqs = (
            self.tok(list(texts), truncation=True, max_length=self.max_len)["input_ids"]
            if texts
            else []
        )
        return pad_ids(seqs, self.pad_id)

    def decode(self, ids: Sequence[int]) -> str:
        """Ids (special tokens dropped) → text."""
        return self.tok.decode([int(i) for i in ids], skip_special_tokens=True)


@TEXT_ENCODERS.register("hf")
class HFTextEncoder(FrozenPretrained):
    """``forward(tokens (B, L), lens (B,)) -> (B, hidden_size)``: a pretrained Hugging Face
    encoder (``AutoModel``) over the ids of the ``hf`` tokenizer of the same folder.

    ``pooling``: ``cls`` = the last hidden state of the first token (``[CLS]`` / ``<s>``);
    ``mean`` = the mean of the last hidden states of the ``lens`` valid tokens. The model's own
    pooler (BERT's tanh layer) is removed: it would get no gradient (DDP's unused-parameter
    error) and is not part of either pooling. ``freeze``: no gradients, dropout off (the tower
    stays in eval mode), forward without autograd; the projection head above still trains.
    """

    def __init__(
        self,
        vocab_size: int | None,
        path: str,
        pooling: Literal["cls", "mean"] = "cls",
        freeze: bool = False,
        max_len: int = 512,
    ) -> None:
        super().__init__()
        transformers = require_transformers("text_encoder 'hf'")
        folder = check_model_dir(path, "text_encoder.path")
        if pooling not in ("cls", "mean"):
            raise ConfigError(f"text_encoder.pooling: unknown {pooling!r}; known: cls, mean")
        if vocab_size is None:
            raise ConfigError(
                f"text_encoder 'hf' needs the run's tokenizer: add tokenizer: {{name: hf, path: {path}}}"
            )
        model = transformers.AutoModel.from_pretrained(str(folder), local_files_only=True)
        self._adopt(
            model, vocab_size, pooling, freeze, max_len,
            too_small=("text_encoder.path", f"the model in {path}",
                       f"use tokenizer: {{name: hf, path: {path}}} (the model's own)"),
        )  # fmt: skip
        if vocab_size != getattr(self.model.config, "vocab_size", vocab_size):
            log.warning(
                "text_encoder 'hf': tokenizer vocabulary %d != model vocabulary %d; are the ids "
                "from tokenizer {name: hf, path: %s}?",
                vocab_size,
                self.model.config.vocab_size,
                path,
            )

    def _adopt(
        self,
        model: nn.Module,
        vocab_size: int,
        pooling: str,
        freeze: bool,
        max_len: int,
        too_small: tuple[str, str, str],
    ) -> None:
        """Take ``model`` as the tower: fp32 master weights whatever dtype it was loaded in
        (autocast runs bf16), no pooler, the pooling/freeze/length settings. ``too_small``:
        ``(config key, what the model is, the fix)`` of the error when the tokenizer has more
        ids than the model embeds."""
        self.model = model
        self.model.float()
        if getattr(self.model, "pooler", None) is not None:
            self.model.pooler = None
        rows = self.model.get_input_embeddings().num_embeddings
        if vocab_size > rows:
            key, what, fix = too_small
            raise ConfigError(
                f"{key}: the tokenizer has {vocab_size} ids but {what} embeds {rows}; {fix}"
            )
        self.pooling = pooling
        self.max_len = min(max_len, max_positions(self.model.config))
        self.output_dim = int(self.model.config.hidden_size)
        self.set_frozen(freeze)

    def forward(self, tokens: Tensor, lens: Tensor) -> Tensor:
        """tokens ``(B, L)`` long (the hf tokenizer's ids), lens ``(B,)`` → pooled ``(B, D)``."""
        tokens = tokens[:, : self.max_len]
        lens = lens.clamp(max=self.max_len)
        mask = lengths_to_mask(lens, tokens.shape[1])
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze):
            hidden = self.model(input_ids=tokens, attention_mask=mask.long()).last_hidden_state
        if self.pooling == "cls":
            return hidden[:, 0]
        hidden = hidden * mask[..., None].to(hidden.dtype)
        return hidden.sum(1) / lens.clamp(min=1)[:, None].to(hidden.dtype)


@TEXT_ENCODERS.register("hf_config")
class HFConfigTextEncoder(HFTextEncoder):
    """The ``hf`` text tower built from a Hugging Face config dict (``AutoConfig.for_model(
    **config)`` + ``AutoModel.from_config``) instead of a model folder: randomly initialised,
    for weights that come from a checkpoint (an Auden CLAP model's ``text_encoder.*``).
    Pooling, freezing and ``forward`` are the ``hf`` tower's; the pooler is removed."""

    def __init__(
        self,
        vocab_size: int | None,
        config: dict[str, Any],
        pooling: Literal["cls", "mean"] = "cls",
        freeze: bool = False,
        max_len: int = 512,
    ) -> None:
        nn.Module.__init__(self)
        transformers = require_transformers("text_encoder 'hf_config'")
        if pooling not in ("cls", "mean"):
            raise ConfigError(f"text_encoder.pooling: unknown {pooling!r}; known: cls, mean")
        if "model_type" not in config:
            raise ConfigError("text_encoder.config: needs the model_type (e.g. bert)")
        if vocab_size is None:
            raise ConfigError("text_encoder 'hf_config' needs the run's tokenizer ({name: hf})")
        kwargs = {k: v for k, v in config.items() if k != "model_type"}
        hf_config = transformers.AutoConfig.for_model(str(config["model_type"]), **kwargs)
        self._adopt(
            transformers.AutoModel.from_config(hf_config), vocab_size, pooling, freeze, max_len,
            too_small=("text_encoder.config", "the model",
                       "use the tokenizer saved with the model"),
        )  # fmt: skip
