"""Released icefall / AudenAI-Auden Zipformer checkpoints → the toolkit's ``zipformer`` encoder.

The toolkit's :class:`~toolkit.encoders.zipformer.ZipformerEncoder` has icefall's module and
parameter names (``encoder_embed.*``, ``encoder.encoders.{i}[.encoder].layers.{j}.*``,
``encoder.downsample_output.bias``) and computes icefall's ``Zipformer2`` in eval mode, so a
released state dict loads with no renaming: :func:`release_state_dict` only keeps the encoder's
entries (an icefall ASR model also holds ``decoder.*``, ``joiner.*``, ``simple_am_proj.*``,
``ctc_output.*`` ...), drops Auden's ``model_batch_count`` and adds the toolkit's schedule
counter ``batch_count``. The configs map with :func:`auden_encoder_config` (Auden
``config.json``) and :func:`icefall_encoder_config` (icefall ``train.py`` options). Streaming
(``causal``) models are not supported. docs/encoders/zipformer.md, "icefall / Auden
checkpoints", has the correspondence.

State dicts written by the toolkit before it used icefall's names (``embed.*``, ``stacks.*``)
migrate with :func:`migrate_toolkit_state_dict`; loading one directly raises
(:data:`OLD_LAYOUT_ERROR`).

Input: like icefall, the encoder takes 80-bin Kaldi log-mel fbank ``(B, T, 80)`` at 100
frames/s without normalisation: the ``fbank`` frontend with its defaults and no
``stats_file`` (:func:`release_frontend_config`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from toolkit.config import ConfigError

TRAINED_BATCH_COUNT = 100_000  # batch_count for weights without one: every schedule at its end
EMBED_KEY = "encoder_embed.conv.0.weight"  # present in every Zipformer2 state dict
OLD_EMBED_KEY = "embed.conv1.weight"  # the toolkit's layout before icefall's names
OLD_LAYOUT_ERROR = (
    "this Zipformer state dict has the toolkit's layout from before icefall's names (embed.*, "
    "stacks.*): convert it with toolkit.encoders.zipformer_release.migrate_toolkit_state_dict("
    "state) and load the result (weights only: a training run cannot resume from an old "
    "checkpoint, its optimizer state follows the old parameter order)"
)
# Auden config.json keys that do not describe the architecture
AUDEN_META_KEYS = {
    "model_type",
    "architectures",
    "transformers_version",
    "torch_dtype",
    "auden_version",
}
ICEFALL_DEFAULTS: dict[str, Any] = {  # icefall zipformer/train.py defaults
    "num_encoder_layers": "2,2,3,4,3,2",
    "downsampling_factor": "1,2,4,8,4,2",
    "feedforward_dim": "512,768,1024,1536,1024,768",
    "num_heads": "4,4,4,8,4,4",
    "encoder_dim": "192,256,384,512,384,256",
    "query_head_dim": "32",
    "value_head_dim": "12",
    "pos_head_dim": "4",
    "pos_dim": 48,
    "encoder_unmasked_dim": "192,192,256,256,256,192",
    "cnn_module_kernel": "31,31,15,15,15,31",
    "causal": False,
}
PER_STACK_KEYS = (
    "num_encoder_layers",
    "downsampling_factor",
    "encoder_dim",
    "feedforward_dim",
    "num_heads",
    "encoder_unmasked_dim",
    "cnn_module_kernel",
    "query_head_dim",
    "value_head_dim",
    "pos_head_dim",
)


class ReleaseStateDict(dict):
    """The encoder entries of a released state dict, in the toolkit's keys; ``dropped`` lists
    the source keys left out (other heads, ``model_batch_count``), ``prefix`` the prefix that
    was stripped (``""``, ``"module."``, ``"audio_encoder."`` ...)."""

    dropped: list[str]
    prefix: str
    layout: str  # for reports: which layout the entries came from


# --------------------------------------------------------------------------- configs


def _ints(value: Any, key: str) -> list[int]:
    """``"2,2,3"`` / ``2`` / ``[2, 2, 3]`` / ``(2,)`` → ``[2, 2, 3]``."""
    try:
        if isinstance(value, str):
            return [int(v) for v in value.replace(" ", "").split(",") if v]
        if isinstance(value, bool):
            raise TypeError
        if isinstance(value, int):
            return [value]
        return [int(v) for v in value]
    except (TypeError, ValueError):
        raise ConfigError(f"{key}: expected integers, got {value!r}") from None


def _flag(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ConfigError(f"{key}: expected a boolean, got {value!r}")


def _encoder_block(values: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Checked architecture values (icefall's names) → the ``encoder`` YAML block."""
    if _flag(values.get("causal", False), f"{source}.causal"):
        raise ConfigError(
            f"{source}.causal: true (a streaming, chunk-causal Zipformer) is not supported by "
            "the toolkit's zipformer encoder; only causal: false checkpoints load"
        )
    stacks = {k: _ints(values[k], f"{source}.{k}") for k in PER_STACK_KEYS}
    n = len(stacks["downsampling_factor"])
    for k, v in stacks.items():
        if len(v) not in (1, n):
            raise ConfigError(f"{source}.{k}: {len(v)} values for {n} stacks")
    pos_dim = _ints(values["pos_dim"], f"{source}.pos_dim")
    if len(pos_dim) != 1:
        raise ConfigError(f"{source}.pos_dim: expected one integer, got {values['pos_dim']!r}")
    block: dict[str, Any] = {"name": "zipformer"}
    for k in PER_STACK_KEYS:
        v = stacks[k]
        block[k] = v[0] if len(v) == 1 and k.endswith("head_dim") else (v * n if len(v) == 1 else v)
    block["pos_dim"] = pos_dim[0]
    block["padding"] = "icefall"
    return block


def auden_encoder_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """An Auden ``ZipformerConfig`` (``config.json`` as a dict) → the toolkit's ``encoder`` YAML
    block (``{"name": "zipformer", ...}``, ``padding: icefall``).

    Raises :class:`ConfigError` (a ``ValueError``) naming the key for what the toolkit cannot
    build: ``causal: true``, ``output_downsampling_factor`` other than 2, another
    ``model_type``, an unknown key. ``feature_dim`` is the frontend's output
    (:func:`release_frontend_config`); ``dropout`` (null: icefall's schedule 0.3 → 0.1) and
    ``warmup_batches`` only act in training.
    """
    src = "auden config"
    if config.get("model_type", "zipformer") != "zipformer":
        raise ConfigError(f"{src}.model_type: {config['model_type']!r} is not a zipformer")
    known = {
        *PER_STACK_KEYS,
        *AUDEN_META_KEYS,
        "pos_dim",
        "causal",
        "chunk_size",
        "left_context_frames",
        "feature_dim",
        "output_downsampling_factor",
        "dropout",
        "warmup_batches",
    }
    unknown = sorted(set(config) - known)
    if unknown:
        raise ConfigError(f"{src}.{unknown[0]}: unknown Zipformer config key (not supported)")
    defaults = {  # Auden ZipformerConfig defaults
        **ICEFALL_DEFAULTS,
        "feedforward_dim": [576, 768, 1152, 1536, 1152, 768],
    }
    values = {**defaults, **config}
    if int(values.get("output_downsampling_factor", 2)) != 2:
        raise ConfigError(
            f"{src}.output_downsampling_factor: {values['output_downsampling_factor']} "
            "(only 2 is supported, as in icefall)"
        )
    block = _encoder_block(values, src)
    if values.get("dropout") is not None:
        block["dropout"] = float(values["dropout"])
    if values.get("warmup_batches") is not None:
        block["warmup_batches"] = float(values["warmup_batches"])
    return block


def icefall_encoder_config(hparams: Mapping[str, Any]) -> dict[str, Any]:
    """icefall ``zipformer/train.py`` option values (comma-separated strings such as
    ``"2,2,3,4,3,2"`` as on its command line, or ints / lists) → the toolkit's ``encoder``
    YAML block. Missing options take train.py's defaults; options that are not the encoder's
    (``vocab_size``, ``decoder_dim``, ``lr`` ...) are ignored. ``causal: true`` raises
    :class:`ConfigError`."""
    values = {**ICEFALL_DEFAULTS, **{k: v for k, v in hparams.items() if v is not None}}
    return _encoder_block(values, "icefall hparams")


def release_frontend_config(config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``frontend`` YAML block a released encoder expects: Kaldi fbank with
    ``feature_dim`` (default 80) bins at 100 frames/s, no ``stats_file`` normalisation (icefall
    / Auden feed raw log-mel; they use ``snip_edges=False``, the toolkit's fbank
    ``snip_edges=True``, which shifts frames by 7.5 ms)."""
    dim = _ints((config or {}).get("feature_dim", 80), "feature_dim")
    return {"name": "fbank", "num_mel_bins": dim[0]}


# --------------------------------------------------------------------------- state dicts


def _prefixes(state: Mapping[str, Any], key: str) -> list[str]:
    """Every prefix ``P`` with ``P + key`` in ``state`` (one per encoder in the state dict)."""
    return [k[: -len(key)] for k in state if k.endswith(key) and k[: -len(key)][-1:] in ("", ".")]


def _release_prefix(state: Mapping[str, Any]) -> str | None:
    """The prefix of the one released encoder in ``state`` (None: no encoder, or several, or
    one with the toolkit's ``batch_count``)."""
    found = _prefixes(state, EMBED_KEY)
    if len(found) != 1 or f"{found[0]}batch_count" in state:
        return None
    return found[0]


def is_release_state_dict(state: Mapping[str, Any]) -> bool:
    """True for a released icefall / Auden layout: ``encoder_embed.*`` and ``encoder.*``
    (possibly under a prefix such as ``module.`` or ``audio_encoder.``, possibly beside other
    heads) without the toolkit's ``batch_count``."""
    return _release_prefix(state) is not None


def is_old_toolkit_state_dict(state: Mapping[str, Any]) -> bool:
    """True when ``state`` holds an encoder in the toolkit's layout before icefall's names
    (``embed.conv1.*``, ``stacks.*``), under any prefix."""
    return any(
        any(k.startswith(f"{p}stacks.") for k in state) for p in _prefixes(state, OLD_EMBED_KEY)
    )


def split_release_state_dict(
    state: Mapping[str, Tensor],
) -> tuple[dict[str, Tensor], list[str], str]:
    """``(encoder entries with the prefix stripped, dropped keys, prefix)``."""
    found = _prefixes(state, EMBED_KEY)
    if len(found) != 1:
        raise ConfigError(
            f"not a Zipformer2 state dict: no key ends with {EMBED_KEY!r} "
            f"(first keys: {list(state)[:5]})"
            if not found
            else f"the state dict holds {len(found)} Zipformer encoders (prefixes {found})"
        )
    prefix = found[0]
    keep = (f"{prefix}encoder_embed.", f"{prefix}encoder.")
    out: dict[str, Tensor] = {}
    dropped: list[str] = []
    for k, v in state.items():
        if k.startswith(keep):
            out[k[len(prefix) :]] = v
        else:
            dropped.append(k)
    causal = [k for k in out if ".depthwise_conv.causal_conv." in k]
    if causal:
        raise ConfigError(
            f"{causal[0]}: a causal (streaming) Zipformer checkpoint; only causal: false "
            "checkpoints are supported"
        )
    return out, dropped, prefix


def release_state_dict(
    state: Mapping[str, Tensor], batch_count: int | None = None
) -> ReleaseStateDict:
    """Released icefall / Auden state dict → the toolkit encoder's state dict (load it with
    ``strict=True``).

    Keeps ``encoder_embed.*`` / ``encoder.*`` (prefix such as ``module.`` stripped) unchanged;
    drops everything else (other heads of an ASR model, Auden's ``model_batch_count``): the
    result's ``dropped`` attribute lists them. Adds ``batch_count``: ``batch_count``, else
    Auden's ``model_batch_count``, else :data:`TRAINED_BATCH_COUNT` (only training schedules
    read it)."""
    out, dropped, prefix = split_release_state_dict(state)
    if batch_count is None:
        mbc = state.get(f"{prefix}model_batch_count")
        batch_count = int(round(float(mbc))) if mbc is not None else TRAINED_BATCH_COUNT
    ans = ReleaseStateDict(out)
    ans["batch_count"] = torch.tensor(int(batch_count), dtype=torch.long)
    ans.dropped, ans.prefix = dropped, prefix
    auden = f"{prefix}model_batch_count" in state
    ans.layout = "an Auden Zipformer" if auden else "an icefall Zipformer2"
    return ans


def import_state_dict(
    state: Mapping[str, Tensor], warmup_batches: float = 4000.0
) -> ReleaseStateDict | None:
    """A whole checkpoint's state dict → the toolkit encoder's entries, for a layout other
    than the toolkit's current one: a released icefall / Auden one (:func:`release_state_dict`)
    or the toolkit's old one (:func:`migrate_toolkit_state_dict`, encoder entries only);
    None for anything else (e.g. a toolkit checkpoint, whose ``encoder.*`` are used as they
    are). The result's ``layout`` names the layout, ``dropped`` the keys left out."""
    if is_release_state_dict(state):
        return release_state_dict(state)
    if not is_old_toolkit_state_dict(state):
        return None
    found = _prefixes(state, OLD_EMBED_KEY)
    if len(found) != 1:
        return None  # several encoders: the caller must pick (loading one raises)
    prefix = found[0]
    migrated = migrate_toolkit_state_dict(
        {k: v for k, v in state.items() if k.startswith(prefix)}, warmup_batches
    )
    ans = ReleaseStateDict({k[len(prefix) :]: v for k, v in migrated.items()})
    ans.dropped = [k for k in state if not k.startswith(prefix)]
    ans.prefix, ans.layout = prefix, "the toolkit's old Zipformer layout (migrated)"
    return ans


def load_release(encoder: nn.Module, state: Mapping[str, Tensor]) -> list[str]:
    """:func:`release_state_dict` then a strict load into ``encoder``; a mismatch raises
    :class:`ConfigError` naming the missing, unexpected and shape-mismatched keys (a config
    that is not the checkpoint's). Returns the dropped keys."""
    new = release_state_dict(state)
    own = encoder.state_dict()
    missing = [k for k in own if k not in new]
    unexpected = [k for k in new if k not in own]
    shapes = [
        f"{k} (checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)})"
        for k, v in new.items()
        if k in own and v.shape != own[k].shape
    ]
    if missing or unexpected or shapes:
        parts = [
            f"{what} ({len(keys)}): {', '.join(keys[:8])}{' ...' if len(keys) > 8 else ''}"
            for what, keys in (
                ("shape mismatch", shapes),
                ("missing", missing),
                ("unexpected", unexpected),
            )
            if keys
        ]
        raise ConfigError(
            "released Zipformer checkpoint does not fit the encoder built from the config ("
            + "; ".join(parts)
            + ")"
        )
    encoder.load_state_dict(new, strict=True)
    return new.dropped


# --------------------------------------------------------------------------- old toolkit layout

_OLD_EMBED = {
    "embed.conv1.": "encoder_embed.conv.0.",
    "embed.conv2.": "encoder_embed.conv.4.",
    "embed.conv3.": "encoder_embed.conv.7.",
    "embed.convnext.depthwise.": "encoder_embed.convnext.depthwise_conv.",
    "embed.convnext.pointwise1.": "encoder_embed.convnext.pointwise_conv1.",
    "embed.convnext.pointwise2.": "encoder_embed.convnext.pointwise_conv2.",
    "embed.out.": "encoder_embed.out.",
    "embed.norm.": "encoder_embed.out_norm.",
    "downsample_output.": "encoder.downsample_output.",
}
_OLD_LAYER = {
    "attn_weights.": "self_attn_weights.",
    "ff1.": "feed_forward1.",
    "ff2.": "feed_forward2.",
    "ff3.": "feed_forward3.",
    "nonlin_attn.": "nonlin_attention.",
    "conv1.depthwise.": "conv_module1.depthwise_conv.",
    "conv2.depthwise.": "conv_module2.depthwise_conv.",
    "conv1.": "conv_module1.",
    "conv2.": "conv_module2.",
    "bypass.scale": "bypass.bypass_scale",
    "bypass_mid.scale": "bypass_mid.bypass_scale",
    "self_attn1.": "self_attn1.",
    "self_attn2.": "self_attn2.",
    "norm.": "norm.",
}
_OLD_STACK = re.compile(r"stacks\.(\d+)\.(.*)")
_OLD_LAYER_KEY = re.compile(r"layers\.(\d+)\.(.*)")


def _rename(key: str, table: Mapping[str, str]) -> str | None:
    for old, new in table.items():
        if key.startswith(old):
            return new + key[len(old) :]
    return None


def _old_key(rel: str, downsampled: set[str]) -> str:
    """One old encoder-relative key → its new name."""
    new = _rename(rel, _OLD_EMBED)
    if new is not None or rel in ("batch_count",) or rel.startswith("proj."):
        return new or rel
    m = _OLD_STACK.fullmatch(rel)
    if m is None:
        raise ConfigError(f"{rel}: not a key of the toolkit's old Zipformer layout")
    i, rest = m.groups()
    if rest == "downsample.bias":
        return f"encoder.encoders.{i}.downsample.bias"
    if rest == "out_combiner.scale":
        return f"encoder.encoders.{i}.out_combiner.bypass_scale"
    lm = _OLD_LAYER_KEY.fullmatch(rest)
    layer_rest = _rename(lm.group(2), _OLD_LAYER) if lm else None
    if lm is None or layer_rest is None:
        raise ConfigError(f"{rel}: not a key of the toolkit's old Zipformer layout")
    inner = ".encoder" if i in downsampled else ""
    return f"encoder.encoders.{i}{inner}.layers.{lm.group(1)}.{layer_rest}"


def migrate_toolkit_state_dict(
    state: Mapping[str, Tensor], warmup_batches: float = 4000.0
) -> dict[str, Tensor]:
    """A state dict in the toolkit's old Zipformer layout (an encoder's, or a whole model's
    with the encoder under a prefix such as ``encoder.``; several encoders are each migrated)
    → the current layout; other entries pass unchanged. The migrated encoder computes what the old one computed (with
    ``padding: masked``, the default):

    - keys renamed to icefall's names (``embed.conv1`` → ``encoder_embed.conv.0``,
      ``stacks.{i}.layers.{j}.ff1`` → ``encoder.encoders.{i}[.encoder].layers.{j}.feed_forward1``
      ...) and icefall's unused per-layer ``bypass_scale`` added (0.5);
    - ``linear_pos`` columns of the sine channels negated (relative positions are now read as
      ``j - i``, as icefall does; the old code read ``i - j``);
    - bypass scales clamped to ``[scale_min, 1]`` at the saved ``batch_count`` (the old code
      clamped them in every forward; now, as in icefall, the forward uses them as they are):
      pass the model's ``warmup_batches`` if it was not 4000.
    """
    prefixes = [
        p
        for p in _prefixes(state, OLD_EMBED_KEY)
        if any(k.startswith(f"{p}stacks.") for k in state)
    ]
    if not prefixes:
        raise ConfigError(f"not an old-layout toolkit Zipformer state dict (no {OLD_EMBED_KEY!r})")
    out: dict[str, Tensor] = {}
    groups: dict[str, dict[str, Tensor]] = {p: {} for p in prefixes}
    for k, v in state.items():
        owner = max((p for p in prefixes if k.startswith(p)), key=len, default=None)
        if owner is None:
            out[k] = v  # not an encoder's entry
        else:
            groups[owner][k[len(owner) :]] = v
    for prefix, rel in groups.items():
        out.update({prefix + k: v for k, v in _migrate_encoder(rel, warmup_batches).items()})
    return out


def _migrate_encoder(rel: dict[str, Tensor], warmup_batches: float) -> dict[str, Tensor]:
    """:func:`migrate_toolkit_state_dict` for one encoder's entries (no prefix)."""
    downsampled = {
        m.group(1) for k in rel if (m := re.fullmatch(r"stacks\.(\d+)\.downsample\.bias", k))
    }
    count = rel.get("batch_count")
    t = float(count) if count is not None else 0.0
    w = float(warmup_batches)
    scale_min = 0.9 + (0.2 - 0.9) * min(max(t / (5 * w), 0.0), 1.0)  # the old schedule's value
    out: dict[str, Tensor] = {}
    for k, v in rel.items():
        new = _old_key(k, downsampled)
        if new.endswith(".self_attn_weights.linear_pos.weight"):
            sign = torch.ones(v.shape[1], dtype=v.dtype)
            sign[1:-1:2] = -1.0  # sine channels; the last channel is the constant 1
            v = v * sign
        elif new.endswith("bypass_scale"):
            v = v.clamp(min=scale_min, max=1.0)
        out[new] = v
        if new.endswith(".norm.bias") and ".layers." in new:
            out[new[: -len("norm.bias")] + "bypass_scale"] = torch.full_like(v, 0.5)
    return out
