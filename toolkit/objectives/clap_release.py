"""Released AudenAI/Auden CLAP models → the toolkit's contrastive model.

An Auden CLAP directory (``auden.models.clap.ClapModel``, written by ``examples/clap/train.py``:
``ClapConfig.save_pretrained`` + ``tokenizer.save_pretrained`` + the model's ``state_dict``) holds

* ``config.json``: ``model_type: clap``, ``audio_encoder_config`` (a full Auden
  ``ZipformerConfig``), ``text_encoder_config`` (a Hugging Face config dict, e.g. BERT),
  ``shared_emb_dim`` (default 1024), ``temp`` (fixed temperature, default 0.07), ``loss``
  (``info-nce`` | ``siglip``), ``embed_reg``;
* the text tower's tokenizer files (``tokenizer_config.json``, ``tokenizer.json`` /
  ``vocab.txt``) beside it;
* the weights (``model.safetensors`` / ``pretrained.pt`` ...): ``audio_encoder.*`` (Zipformer,
  with ``audio_encoder.model_batch_count``), ``text_encoder.*`` (the Hugging Face model built
  with ``add_pooling_layer=False``), ``audio_proj.{0,2}.*`` and ``text_proj.{0,2}.*``
  (``Linear → ReLU → Linear``). There is no temperature weight.

Auden's embeddings: audio = ``normalize(masked_mean_t(audio_proj(zipformer(x)_t)))`` (project
every frame, then average the valid ones); text = ``normalize(text_proj(hidden[:, 0]))`` (the
last hidden state of ``[CLS]``), captions tokenised with ``truncation, max_length=30``.

The toolkit computes the same with the ``contrastive`` objective set as Auden's heads are (a ReLU
projection MLP, ``project_then_mean`` pooling, a fixed temperature) and, when the text tower comes from the CLAP directory itself, the ``hf_config``
text encoder (:class:`toolkit.text.hf.HFConfigTextEncoder`: the ``hf`` tower built from a
config dict, its weights coming from the checkpoint). docs/released_checkpoints.md ("CLAP
checkpoints") has the details.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from toolkit.config import ConfigError
from toolkit.encoders.zipformer_release import (
    ReleaseStateDict,
    auden_encoder_config,
    release_frontend_config,
    release_state_dict,
)

CLAP_DEFAULTS: dict[str, Any] = {  # auden ClapConfig defaults
    "shared_emb_dim": 1024,
    "temp": 0.07,
    "loss": "info-nce",
    "embed_reg": True,
}
TEXT_MAX_LEN = 30  # ClapModel.encode_text: tokenizer(..., truncation=True, max_length=30)
TOKENIZER_FILES = (  # one of these beside tokenizer_config.json makes a local tokenizer
    "tokenizer.json",
    "vocab.txt",
    "vocab.json",
    "spiece.model",
    "sentencepiece.bpe.model",
)
DROPPED_TEXT_KEYS = ("embeddings.position_ids",)  # constant buffer saved by transformers < 4.31
LOAD_HINT = 'toolkit.load(DIR, text_tower="/path/to/bert")'


def is_clap_config(config: Any) -> bool:
    """True for an Auden CLAP ``config.json`` (as a dict): ``model_type: clap``."""
    return isinstance(config, Mapping) and str(config.get("model_type", "")).lower() == "clap"


# --------------------------------------------------------------------------- configs


def _has_tokenizer(folder: Path) -> bool:
    return (folder / "tokenizer_config.json").is_file() and any(
        (folder / f).is_file() for f in TOKENIZER_FILES
    )


def auden_clap_config(
    config: Mapping[str, Any], model_dir: str | Path, text_tower: str | Path | None = None
) -> dict[str, Any]:
    """An Auden CLAP ``config.json`` (as a dict) in ``model_dir`` → the toolkit config sections
    ``{"frontend", "encoder", "objective", "tokenizer"}``.

    The audio tower maps with :mod:`toolkit.encoders.zipformer_release`; the objective is
    ``contrastive`` with Auden's heads (ReLU MLP, ``project_then_mean``, fixed temperature). The text tower: with ``text_tower`` (a local Hugging Face model folder),
    the ``hf`` tower and tokenizer on that folder (the checkpoint's ``text_encoder.*`` then
    replace its weights); else the ``hf_config`` tower built from ``text_encoder_config`` and
    the ``hf`` tokenizer on ``model_dir`` (Auden saves the tokenizer there). Raises
    :class:`ConfigError` naming what is missing (another audio tower than Zipformer, no
    tokenizer files, no ``text_encoder_config``) and how to pass ``text_tower``.
    """
    src = f"{Path(model_dir) / 'config.json'}"
    if not is_clap_config(config):
        raise ConfigError(f"{src}: model_type {config.get('model_type')!r} is not 'clap'")
    values = {**CLAP_DEFAULTS, **config}
    audio = values.get("audio_encoder_config") or {}
    if not isinstance(audio, Mapping) or audio.get("model_type", "zipformer") != "zipformer":
        kind = audio.get("model_type") if isinstance(audio, Mapping) else audio
        raise ConfigError(
            f"{src}: audio_encoder_config.model_type {kind!r} is not supported "
            "(only Zipformer audio towers load)"
        )
    temp = float(values["temp"])
    if temp <= 0:
        raise ConfigError(f"{src}: temp must be > 0, got {temp}")
    text_enc, tokenizer = _text_sections(
        values.get("text_encoder_config"), Path(model_dir), src, text_tower
    )
    objective = {
        "name": "contrastive",
        "embed_dim": int(values["shared_emb_dim"]),
        "init_temperature": temp,
        "max_logit_scale": max(100.0, 1.0 / temp),
        "learn_temperature": False,
        "proj_layers": 2,
        "proj_activation": "relu",
        "audio_pooling": "project_then_mean",
        "text_encoder": text_enc,
    }
    return {
        "frontend": release_frontend_config(audio),
        "encoder": auden_encoder_config(audio),
        "objective": objective,
        "tokenizer": tokenizer,
    }


def _text_sections(
    text_cfg: Any, model_dir: Path, src: str, text_tower: str | Path | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(objective.text_encoder, tokenizer)`` blocks (see :func:`auden_clap_config`)."""
    if text_tower is not None:
        folder = Path(text_tower).expanduser()
        if not (folder / "config.json").is_file() or not _has_tokenizer(folder):
            raise ConfigError(
                f"text_tower: {folder} is not a local Hugging Face model folder (looked for "
                f"config.json, tokenizer_config.json and one of {', '.join(TOKENIZER_FILES)}); "
                "give a folder written by save_pretrained of the model and its tokenizer"
            )
        path = str(folder.resolve())
        return (
            {"name": "hf", "path": path, "pooling": "cls"},
            {"name": "hf", "path": path, "max_len": TEXT_MAX_LEN},
        )
    if not isinstance(text_cfg, Mapping) or not text_cfg.get("model_type"):
        raise ConfigError(
            f"{src}: no text_encoder_config with a model_type (Auden then fetches "
            "bert-base-uncased's config from the hub); give a local folder of the text model "
            f"and its tokenizer: {LOAD_HINT}"
        )
    if not _has_tokenizer(model_dir):
        raise ConfigError(
            f"{model_dir}: the CLAP text tower's tokenizer is not there (looked for "
            f"tokenizer_config.json and one of {', '.join(TOKENIZER_FILES)}; Auden's training "
            "script saves them beside config.json); give a local folder of the text model "
            f"({text_cfg.get('model_type')}) and its tokenizer: {LOAD_HINT}"
        )
    return (
        {"name": "hf_config", "config": dict(text_cfg), "pooling": "cls"},
        {"name": "hf", "path": str(model_dir.resolve()), "max_len": TEXT_MAX_LEN},
    )


# --------------------------------------------------------------------------- state dicts


def clap_state_dict(
    state: Mapping[str, Tensor], config: Mapping[str, Any] | None = None
) -> ReleaseStateDict:
    """Auden CLAP weights → the toolkit model's keys (load strictly into the model built from
    :func:`auden_clap_config`).

    ``audio_encoder.*`` → ``encoder.*`` (:func:`~toolkit.encoders.zipformer_release.
    release_state_dict`: ``model_batch_count`` becomes ``batch_count``);
    ``text_encoder.X`` → ``objective.text_encoder.model.X``; ``audio_proj.*`` / ``text_proj.*``
    → ``objective.audio_proj.*`` / ``objective.text_proj.*``; adds ``objective.logit_scale`` =
    ``log(1 / temp)`` (Auden's temperature is ``config["temp"]``, default 0.07, not a weight).
    A leading ``module.`` (DDP) is stripped. Dropped (listed in the result's ``dropped``):
    ``audio_encoder.model_batch_count``, ``text_encoder.embeddings.position_ids`` (a constant
    buffer old ``transformers`` saved) and ``text_encoder.pooler.*`` (the toolkit's tower has no
    pooler; Auden builds none). Any other key raises :class:`ConfigError`.
    """
    audio = release_state_dict(state)
    if not audio.prefix.endswith("audio_encoder."):
        raise ConfigError(
            f"not an Auden CLAP state dict: the Zipformer is under {audio.prefix!r}, "
            "not 'audio_encoder.'"
        )
    outer = audio.prefix[: -len("audio_encoder.")]
    out = ReleaseStateDict({f"encoder.{k}": v for k, v in audio.items()})
    batch_count = f"{audio.prefix}model_batch_count"
    dropped: list[str] = []
    unknown: list[str] = []
    for k in audio.dropped:
        rel = k[len(outer) :] if k.startswith(outer) else ""
        if k == batch_count:
            dropped.append(k)
        elif rel.startswith("text_encoder."):
            sub = rel[len("text_encoder.") :]
            if sub in DROPPED_TEXT_KEYS or sub.startswith("pooler."):
                dropped.append(k)
            else:
                out[f"objective.text_encoder.model.{sub}"] = state[k]
        elif rel.startswith(("audio_proj.", "text_proj.")):
            out[f"objective.{rel}"] = state[k]
        else:
            unknown.append(k)
    if unknown:
        raise ConfigError(
            f"not an Auden CLAP state dict: unknown keys {unknown[:5]} (expected audio_encoder.*, "
            "text_encoder.*, audio_proj.*, text_proj.*)"
        )
    temp = float({**CLAP_DEFAULTS, **(config or {})}["temp"])
    out["objective.logit_scale"] = torch.tensor(math.log(1.0 / temp))
    out.dropped, out.prefix, out.layout = dropped, outer, "an Auden CLAP model"
    return out
