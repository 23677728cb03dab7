"""Zipformer encoder (Yao et al., "Zipformer: A faster and better encoder for automatic speech
recognition", ICLR 2024), registered as encoder ``zipformer``.

Fbank at 100 frames/s → ``encoder_embed`` (:class:`Conv2dSubsampling`, 50 frames/s) →
``encoder`` (:class:`Zipformer2`): six stacks of Zipformer layers run at 50/1, 50/2, 50/4, 50/8,
50/4, 50/2 frames/s (each stack downsamples its input, runs its layers, upsamples back to 50
frames/s and mixes the result with its input through a learned per-channel bypass) → the widest
channels of the stack outputs → downsampling by 2 → 25 frames/s.

Module and parameter names are icefall's (``egs/librispeech/ASR/zipformer``, as saved by
icefall and AudenAI/Auden), and in eval mode the computation is theirs: a released checkpoint's
``encoder_embed.*`` / ``encoder.*`` load as they are (:mod:`toolkit.encoders.zipformer_release`).
Building blocks live in :mod:`toolkit.encoders.zipformer_modules`; the YAML keys and the size
presets are documented in docs/encoders/zipformer.md.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from torch import Tensor, nn

from toolkit.config import ConfigError
from toolkit.encoders.zipformer_modules import (
    PADDING_MODES,
    BiasNorm,
    Bypass,
    Conv2dSubsampling,
    ConvModule,
    Downsample,
    FeedForward,
    NonlinAttention,
    RelPosAttentionWeights,
    SelfAttention,
    compact_rel_positions,
    convert_channels,
    ramp,
    upsample,
)
from toolkit.layers import lengths_to_mask, maybe_checkpoint
from toolkit.registry import ENCODERS

# Published sizes (icefall egs/librispeech/ASR/zipformer, RESULTS.md and train.py defaults).
COMMON: dict[str, list[int] | int] = {
    "downsampling_factor": [1, 2, 4, 8, 4, 2],
    "num_heads": [4, 4, 4, 8, 4, 4],
    "cnn_module_kernel": [31, 31, 15, 15, 15, 31],
    "query_head_dim": 32,
    "value_head_dim": 12,
    "pos_head_dim": 4,
    "pos_dim": 48,
}
PRESETS: dict[str, dict[str, list[int]]] = {
    "S": {
        "num_encoder_layers": [2, 2, 2, 2, 2, 2],
        "encoder_dim": [192, 256, 256, 256, 256, 256],
        "feedforward_dim": [512, 768, 768, 768, 768, 768],
        "encoder_unmasked_dim": [192, 192, 192, 192, 192, 192],
    },
    "M": {
        "num_encoder_layers": [2, 2, 3, 4, 3, 2],
        "encoder_dim": [192, 256, 384, 512, 384, 256],
        "feedforward_dim": [512, 768, 1024, 1536, 1024, 768],
        "encoder_unmasked_dim": [192, 192, 256, 256, 256, 192],
    },
    "L": {
        "num_encoder_layers": [2, 2, 4, 5, 4, 2],
        "encoder_dim": [192, 256, 512, 768, 512, 256],
        "feedforward_dim": [512, 768, 1536, 2048, 1536, 768],
        "encoder_unmasked_dim": [192, 192, 256, 320, 256, 192],
    },
}
PER_STACK = (
    "num_encoder_layers",
    "encoder_dim",
    "feedforward_dim",
    "encoder_unmasked_dim",
    "num_heads",
    "cnn_module_kernel",
    "query_head_dim",
    "value_head_dim",
    "pos_head_dim",
)


def _seq_mask(x: Tensor, rate: float | Tensor, training: bool) -> Tensor | None:
    """``(B, 1, 1)`` 0/1 mask dropping whole sequences with probability ``rate`` (training;
    a float or a 0-d tensor)."""
    if not training or (not isinstance(rate, Tensor) and rate <= 0.0):
        return None
    return (torch.rand(x.shape[0], 1, 1, device=x.device) >= rate).to(x.dtype)


def _masked(y: Tensor, mask: Tensor | None) -> Tensor:
    return y if mask is None else y * mask


class ZipformerLayer(nn.Module):
    """One Zipformer block (the paper's Fig. 3; icefall's ``Zipformer2EncoderLayer``): attention
    weights computed once and shared; ``FF(3/4) → NonlinAttention → SelfAttention → Conv → FF →
    bypass_mid → SelfAttention → Conv → FF(5/4) → BiasNorm → bypass``, all residual.
    ``(B, T, D)`` → ``(B, T, D)``.

    The buffer ``bypass_scale`` is icefall's layer-level parameter of that name, which its
    forward never reads (its code marks it for removal); it is kept (as a buffer: no gradient)
    only so that released checkpoints load strictly."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        query_head_dim: int,
        value_head_dim: int,
        pos_head_dim: int,
        pos_dim: int,
        feedforward_dim: int,
        kernel_size: int,
        dropout: float,
    ) -> None:
        super().__init__()
        self.bypass = Bypass(dim)
        self.bypass_mid = Bypass(dim)
        self.self_attn_weights = RelPosAttentionWeights(
            dim, num_heads, query_head_dim, pos_head_dim, pos_dim
        )
        self.self_attn1 = SelfAttention(dim, num_heads, value_head_dim)
        self.self_attn2 = SelfAttention(dim, num_heads, value_head_dim)
        self.feed_forward1 = FeedForward(dim, feedforward_dim * 3 // 4, dropout)
        self.feed_forward2 = FeedForward(dim, feedforward_dim, dropout)
        self.feed_forward3 = FeedForward(dim, feedforward_dim * 5 // 4, dropout)
        self.nonlin_attention = NonlinAttention(dim)
        self.conv_module1 = ConvModule(dim, kernel_size)
        self.conv_module2 = ConvModule(dim, kernel_size)
        self.register_buffer("bypass_scale", torch.full((dim,), 0.5))
        self.norm = BiasNorm(dim)

    def forward(
        self,
        x: Tensor,
        pos: Tensor,
        valid: Tensor,
        module_skip: float | Tensor = 0.0,
        layer_skip: float | Tensor = 0.0,
        scale_min: float | Tensor = 0.2,
    ) -> Tensor:
        """x ``(B, T, D)``, pos ``(2T-1, pos_dim)`` relative-position embeddings, valid
        ``(B, T)``; ``module_skip`` drops the attention/convolution modules and ``layer_skip``
        the whole layer for random sequences (training only); rates are floats or 0-d
        tensors."""
        x_orig = x
        w = self.self_attn_weights(x, pos, valid)  # (B, H, T, T)
        attn_keep = _seq_mask(x, module_skip, self.training)
        x = x + self.feed_forward1(x)
        x = x + _masked(self.nonlin_attention(x, w[:, 0]), attn_keep)
        x = x + _masked(self.self_attn1(x, w), attn_keep)
        x = x + _masked(self.conv_module1(x, valid), _seq_mask(x, module_skip, self.training))
        x = x + self.feed_forward2(x)
        x = self.bypass_mid(x_orig, x, scale_min)
        x = x + _masked(self.self_attn2(x, w), attn_keep)
        x = x + _masked(self.conv_module2(x, valid), _seq_mask(x, module_skip, self.training))
        x = x + self.feed_forward3(x)
        return self.bypass(x_orig, self.norm(x), scale_min, layer_skip)


class ZipformerStack(nn.Module):
    """``num_layers`` :class:`ZipformerLayer` at one frame rate (icefall's
    ``Zipformer2Encoder``): relative-position embeddings (dropout 0.15 in training) computed
    once for all layers; the feature mask multiplies the input and every layer's output.

    ``(B, T, D)``, lens ``(B,)`` → ``(B, T, D)``.
    """

    def __init__(
        self,
        num_layers: int,
        dim: int,
        pos_dim: int,
        activation_checkpointing: bool = False,
        **layer_kw,
    ) -> None:
        super().__init__()
        self.pos_dim = pos_dim
        self.activation_checkpointing = activation_checkpointing
        self.pos_dropout = nn.Dropout(0.15)
        self.layers = nn.ModuleList(
            ZipformerLayer(dim, pos_dim=pos_dim, **layer_kw) for _ in range(num_layers)
        )

    def forward(
        self,
        x: Tensor,
        lens: Tensor,
        feature_mask: Tensor | None,
        layer_skip: list[float] | Tensor,
        module_skip: float | Tensor,
        scale_min: float | Tensor,
    ) -> Tensor:
        valid = lengths_to_mask(lens, x.shape[1])
        pos = self.pos_dropout(compact_rel_positions(x.shape[1], self.pos_dim, x.device))
        if feature_mask is not None:
            x = x * feature_mask
        for layer, skip in zip(self.layers, layer_skip):
            x = maybe_checkpoint(
                layer,
                x,
                pos,
                valid,
                module_skip,
                skip,
                scale_min,
                enabled=self.activation_checkpointing,
            )
            if feature_mask is not None:
                x = x * feature_mask
        return x


class DownsampledStack(nn.Module):
    """A :class:`ZipformerStack` run at 50/``factor`` frames/s (icefall's
    ``DownsampledZipformer2Encoder``): ``downsample``, the stack (``encoder``), upsample to the
    input length, learned per-channel bypass ``out_combiner`` with the input.

    ``(B, T, D)`` at 50 frames/s, lens ``(B,)`` → ``(B, T, D)``.
    """

    def __init__(self, encoder: ZipformerStack, dim: int, factor: int, padding: str) -> None:
        super().__init__()
        self.factor = factor
        self.downsample = Downsample(factor, padding)
        self.encoder = encoder
        self.out_combiner = Bypass(dim)

    @property
    def layers(self) -> nn.ModuleList:
        return self.encoder.layers

    def forward(
        self,
        x: Tensor,
        lens: Tensor,
        feature_mask: Tensor | None,
        layer_skip: list[float] | Tensor,
        module_skip: float | Tensor,
        scale_min: float | Tensor,
    ) -> Tensor:
        x_orig = x
        x, lens = self.downsample(x, lens)
        x = self.encoder(x, lens, feature_mask, layer_skip, module_skip, scale_min)
        return self.out_combiner(x_orig, upsample(x, self.factor, x_orig.shape[1]), scale_min)


class Zipformer2(nn.Module):
    """The stacks and the output downsampling (icefall's ``Zipformer2``): ``(B, T, D0)`` at
    50 frames/s, lens → ``(B, ceil(T/2), max(encoder_dim))`` at 25 frames/s, ``ceil(lens/2)``.

    Stack ``i``'s input is the previous output with its channels truncated or zero-padded to
    ``encoder_dim[i]``; the output takes channels ``[0, d_last)`` from the last stack and each
    wider range from the latest stack that has it."""

    def __init__(
        self,
        cfg: dict,
        dropout: float,
        padding: str,
        activation_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        self.encoder_dim: list[int] = list(cfg["encoder_dim"])
        stacks: list[nn.Module] = []
        for i, dim in enumerate(self.encoder_dim):
            stack = ZipformerStack(
                cfg["num_encoder_layers"][i],
                dim,
                pos_dim=cfg["pos_dim"],
                activation_checkpointing=activation_checkpointing,
                num_heads=cfg["num_heads"][i],
                query_head_dim=cfg["query_head_dim"][i],
                value_head_dim=cfg["value_head_dim"][i],
                pos_head_dim=cfg["pos_head_dim"][i],
                feedforward_dim=cfg["feedforward_dim"][i],
                kernel_size=cfg["cnn_module_kernel"][i],
                dropout=dropout,
            )
            factor = cfg["downsampling_factor"][i]
            stacks.append(DownsampledStack(stack, dim, factor, padding) if factor > 1 else stack)
        self.encoders = nn.ModuleList(stacks)
        self.downsample_output = Downsample(2, padding)

    def _full_dim_output(self, outputs: list[Tensor]) -> Tensor:
        """Channels ``[0, d_last)`` from the last stack, each wider range from the latest
        stack that has it: ``(B, T, max(encoder_dim))``."""
        pieces, cur = [outputs[-1]], outputs[-1].shape[-1]
        for out in reversed(outputs[:-1]):
            if out.shape[-1] > cur:
                pieces.append(out[..., cur:])
                cur = out.shape[-1]
        return torch.cat(pieces, dim=-1)

    def forward(
        self,
        x: Tensor,
        lens: Tensor,
        feature_masks: list[Tensor | None],
        layer_skip: list[Any],
        module_skip: float | Tensor,
        scale_min: float | Tensor,
    ) -> tuple[Tensor, Tensor]:
        outputs = []
        for i, stack in enumerate(self.encoders):
            x = convert_channels(x, self.encoder_dim[i])
            x = stack(x, lens, feature_masks[i], layer_skip[i], module_skip, scale_min)
            outputs.append(x)
        return self.downsample_output(self._full_dim_output(outputs), lens)  # 25 frames/s


def _to_device(values: list[float], device: torch.device) -> Tensor:
    """Host floats → a float32 tensor on ``device`` without waiting for it (a pageable host →
    CUDA copy would drain the stream; a pinned one is asynchronous)."""
    t = torch.tensor(values, dtype=torch.float32)
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def _forget_position(module: nn.Module, incompatible_keys: Any) -> None:
    """After ``load_state_dict``: the next forward reads ``batch_count`` again."""
    module._position = None


def _refuse_old_layout(module: nn.Module, state: dict, prefix: str, *args: Any) -> None:
    """Before ``load_state_dict``: a state dict in the toolkit's layout before the icefall
    names (``embed.*``, ``stacks.*``) raises instead of loading nothing (``strict=False``)."""
    from toolkit.encoders.zipformer_release import OLD_LAYOUT_ERROR, is_old_toolkit_state_dict

    if is_old_toolkit_state_dict(
        {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    ):
        raise ConfigError(OLD_LAYOUT_ERROR)


def resolve_config(size: str, overrides: dict[str, int | list[int] | None]) -> dict:
    """Preset ``size`` plus explicit overrides, per-stack values broadcast to lists (an int or
    a one-element list: the same value for every stack)."""
    if size not in PRESETS:
        raise ConfigError(f"encoder.size: unknown zipformer size {size!r}; known: S, M, L")
    cfg: dict = {**COMMON, **PRESETS[size]}
    cfg.update({k: v for k, v in overrides.items() if v is not None})
    n = len(cfg["downsampling_factor"])
    for key in PER_STACK:
        v = cfg[key]
        v = [v] * n if isinstance(v, int) else list(v)
        if len(v) == 1:
            v = v * n
        if len(v) != n:
            raise ConfigError(
                f"encoder.{key}: {len(v)} values for {n} stacks (downsampling_factor has {n})"
            )
        cfg[key] = v
    if any(f < 1 for f in cfg["downsampling_factor"]):
        raise ConfigError(
            f"encoder.downsampling_factor: factors must be >= 1, got {cfg['downsampling_factor']}"
        )
    for u, d in zip(cfg["encoder_unmasked_dim"], cfg["encoder_dim"]):
        if u > d:
            raise ConfigError(f"encoder.encoder_unmasked_dim: {u} exceeds its encoder_dim {d}")
    if cfg["pos_dim"] % 2:
        raise ConfigError(f"encoder.pos_dim: must be even, got {cfg['pos_dim']}")
    return cfg


@ENCODERS.register("zipformer")
class ZipformerEncoder(nn.Module):
    """Zipformer: ``forward(features (B, T, F), feature_lens (B,)) -> (hidden (B, T', D),
    lens (B,))`` with ``T' = ceil(((T - 7) // 2) / 2)`` (100 → 25 frames/s) and
    ``D = output_dim``. Padded output frames are zero.

    ``size`` picks a published preset (S / M / L); any per-stack key given explicitly
    (an int for all stacks or one value per stack) overrides it. ``output_dim`` defaults to
    the widest stack (S 256, M 512, L 768); another value adds a linear projection.
    ``padding``: ``"masked"`` (default) — valid frames never depend on padding (a clip gives
    the same output alone or padded in a batch); ``"icefall"`` — icefall's handling, where the
    last few valid frames of a padded clip read the batch's padding (exactly icefall's outputs
    for a padded batch; same weights either way).
    Training-time regularisers: ``dropout`` (feed-forward hidden units and the subsampling
    output), per-sequence layer skipping (``layer_skip_rate`` × sqrt(stack factor) after a
    warm-up from 0.5), attention/convolution module skipping (``module_skip_rate`` decaying to
    0), and ``feature_mask_prob`` (channels above ``encoder_unmasked_dim`` zeroed for random
    sequences). Their schedules count training forward calls (buffer ``batch_count``) over
    ``warmup_batches``. ``activation_checkpointing`` recomputes each layer in backward instead
    of storing its activations (same results, less memory, about one more forward of compute).

    Children ``encoder_embed`` and ``encoder`` carry icefall's names: a released icefall /
    Auden state dict loads after :func:`toolkit.encoders.zipformer_release.release_state_dict`
    (which only adds ``batch_count``); :meth:`import_state_dict` does that, and migrates the
    toolkit's earlier layout, for :mod:`toolkit.weights`.
    """

    def __init__(
        self,
        input_dim: int,
        size: Literal["S", "M", "L"] = "M",
        output_dim: int | None = None,
        num_encoder_layers: int | list[int] | None = None,
        encoder_dim: int | list[int] | None = None,
        encoder_unmasked_dim: int | list[int] | None = None,
        feedforward_dim: int | list[int] | None = None,
        num_heads: int | list[int] | None = None,
        cnn_module_kernel: int | list[int] | None = None,
        query_head_dim: int | list[int] | None = None,
        value_head_dim: int | list[int] | None = None,
        pos_head_dim: int | list[int] | None = None,
        pos_dim: int | None = None,
        downsampling_factor: list[int] | None = None,
        subsampling_channels: list[int] | None = None,
        padding: Literal["masked", "icefall"] = "masked",
        dropout: float = 0.1,
        layer_skip_rate: float = 0.035,
        module_skip_rate: float = 0.2,
        feature_mask_prob: float = 0.125,
        warmup_batches: float = 4000.0,
        activation_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        cfg = resolve_config(
            size,
            {
                "num_encoder_layers": num_encoder_layers,
                "encoder_dim": encoder_dim,
                "encoder_unmasked_dim": encoder_unmasked_dim,
                "feedforward_dim": feedforward_dim,
                "num_heads": num_heads,
                "cnn_module_kernel": cnn_module_kernel,
                "query_head_dim": query_head_dim,
                "value_head_dim": value_head_dim,
                "pos_head_dim": pos_head_dim,
                "pos_dim": pos_dim,
                "downsampling_factor": downsampling_factor,
            },
        )
        if padding not in PADDING_MODES:
            raise ConfigError(f"encoder.padding: {padding!r} is not one of {PADDING_MODES}")
        self.cfg = cfg
        dims = cfg["encoder_dim"]
        channels = tuple(subsampling_channels or (8, 32, 128))
        if len(channels) != 3:
            raise ConfigError("encoder.subsampling_channels: expected 3 values")
        self.encoder_embed = Conv2dSubsampling(input_dim, dims[0], channels, dropout, padding)  # type: ignore[arg-type]
        self.encoder = Zipformer2(cfg, dropout, padding, activation_checkpointing)
        natural = max(dims)
        self.output_dim = output_dim or natural
        self.proj = nn.Linear(natural, self.output_dim) if self.output_dim != natural else None
        self.layer_skip_rate = layer_skip_rate
        self.module_skip_rate = module_skip_rate
        self.feature_mask_prob = feature_mask_prob
        self.warmup_batches = warmup_batches
        self.register_buffer("batch_count", torch.zeros((), dtype=torch.long))
        self._position: int | None = None  # host copy of batch_count (see schedule)
        self.register_load_state_dict_pre_hook(_refuse_old_layout)
        self.register_load_state_dict_post_hook(_forget_position)

    def import_state_dict(self, state: dict[str, Tensor]) -> dict[str, Tensor] | None:
        """A whole checkpoint in a released icefall / Auden layout (``encoder_embed.*``,
        ``encoder.*``, other heads dropped) or in the toolkit's earlier layout → this module's
        entries; None for anything else. Used by :func:`toolkit.weights.load_init`."""
        from toolkit.encoders.zipformer_release import import_state_dict

        return import_state_dict(state, self.warmup_batches)

    # ------------------------------------------------------------------ schedules
    def _layer_skip(self, i: int, t: float) -> list[float]:
        """Per-layer skip rates of stack ``i``: 0.5 until the layer's warm-up slot (stacks and
        their layers warm up one after another within ``warmup_batches``), then linearly down
        to ``layer_skip_rate × sqrt(factor)``."""
        n, w = len(self.cfg["encoder_dim"]), self.warmup_batches
        begin, end = w * (i + 1) / (n + 1), w * (i + 2) / (n + 1)
        layers = self.cfg["num_encoder_layers"][i]
        final = self.layer_skip_rate * math.sqrt(self.cfg["downsampling_factor"][i])
        step = (end - begin) / max(layers, 1)
        return [
            ramp(t, ((begin + j * step, 0.5), (begin + (j + 1) * step, final)))
            for j in range(layers)
        ]

    def _feature_masks(self, x: Tensor) -> list[Tensor | None]:
        """Per stack ``(B, 1, D)`` masks (the same sequences in every stack): with
        ``u = encoder_unmasked_dim`` and ``m = u + (D - u) // 2``, channels ``[u, m)`` are zeroed
        for a random ``feature_mask_prob`` of the sequences and channels ``[m, D)`` for those
        and about as many more, so those sequences train a narrower model."""
        if not self.training or self.feature_mask_prob <= 0.0:
            return [None] * len(self.cfg["encoder_dim"])
        b, p = x.shape[0], self.feature_mask_prob
        m1 = (torch.rand(b, 1, 1, device=x.device) > p).to(x.dtype)
        m2 = m1 * (torch.rand(b, 1, 1, device=x.device) > p).to(x.dtype)
        masks: list[Tensor | None] = []
        for d, u in zip(self.cfg["encoder_dim"], self.cfg["encoder_unmasked_dim"]):
            u2 = u + (d - u) // 2
            m = torch.ones(b, 1, d, device=x.device, dtype=x.dtype)
            m[..., u:u2] = m[..., u:u2] * m1
            m[..., u2:] = m[..., u2:] * m2
            masks.append(m)
        return masks

    # ------------------------------------------------------------------ forward
    @torch.compiler.disable
    def schedule(self, device: torch.device) -> tuple[Any, Any, list[Any]]:
        """``(module_skip, scale_min, per-stack layer skips)`` at the current position; in
        training the position advances. The position is kept on the host (``batch_count`` is
        read once after construction or loading, then only written), so no step waits for the
        device. In training, a group whose ramp is still moving is returned as a device tensor
        (layer skips until ``warmup_batches``, module skip until 4×, ``scale_min`` until 5×) and
        a final value as a float: a compiled encoder sees four graph versions over a run
        instead of one per step. Runs outside ``torch.compile`` (one graph break). Writing
        ``batch_count`` in place after the first forward has no effect (the host copy wins): set
        it before, or through ``load_state_dict``."""
        if self._position is None:
            self._position = int(self.batch_count)
        t = float(self._position)
        if self.training:
            self._position += 1
            self.batch_count.fill_(self._position)
        w = self.warmup_batches
        module_skip: Any = ramp(
            t, ((0.0, self.module_skip_rate), (w, self.module_skip_rate / 4), (4 * w, 0.0))
        )
        scale_min: Any = ramp(t, ((0.0, 0.9), (5 * w, 0.2)))
        layer_skip: list[Any] = [
            self._layer_skip(i, t) for i in range(len(self.cfg["encoder_dim"]))
        ]
        if self.training:
            if t <= w:  # (at a ramp's end its value may differ from the final one by rounding)
                flat = _to_device(sum(layer_skip, []), device)
                layer_skip = list(flat.split([len(v) for v in layer_skip]))
            if t <= 4 * w and module_skip != 0.0:  # a zero rate draws no random numbers
                module_skip = torch.full((), module_skip, device=device)
            if t <= 5 * w:
                scale_min = torch.full((), scale_min, device=device)
        return module_skip, scale_min, layer_skip

    def forward(
        self, features: Tensor, feature_lens: Tensor, schedule: tuple | None = None
    ) -> tuple[Tensor, Tensor]:
        """features ``(B, T, F)``, feature_lens ``(B,)`` → hidden ``(B, T', D)``, lens ``(B,)``.

        ``schedule``: the values of one :meth:`schedule` call, for callers that run one training
        step as several forwards (gradient caching: chunks and their recomputation share one
        step's values and advance the position once); None: this call's own."""
        if schedule is None:
            schedule = self.schedule(features.device)
        module_skip, scale_min, layer_skip = schedule
        x, lens = self.encoder_embed(features, feature_lens)  # 50 frames/s
        masks = self._feature_masks(x)
        x, lens = self.encoder(x, lens, masks, layer_skip, module_skip, scale_min)  # 25 frames/s
        if self.proj is not None:
            x = self.proj(x)
        valid = lengths_to_mask(lens, x.shape[1])
        return x.masked_fill(~valid[..., None], 0.0), lens
