"""Building blocks of the Zipformer encoder (Yao et al., "Zipformer: A faster and better encoder
for automatic speech recognition", ICLR 2024). Written from the paper; in eval mode each block
computes what its counterpart in icefall's ``zipformer/{zipformer,subsampling,scaling}.py``
computes, with the same sub-module and parameter names, so that released icefall / Auden
checkpoints load unchanged (docs/encoders/zipformer.md, "icefall / Auden checkpoints"). See
:mod:`toolkit.encoders.zipformer` for how they fit together.

Every block works on batch-first ``(B, T, D)`` tensors and takes a ``valid`` mask ``(B, T)``
(True on real frames) where it mixes frames. icefall's gradient-only modules (balancers,
whitening, gradient scaling) are left out; where they sit inside an ``nn.Sequential`` whose
indices appear in checkpoint keys, :class:`GradientOnly` keeps their place.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

try:  # optional fused kernels (CUDA); the pure-torch definitions below are the reference
    import k2  # type: ignore[import-not-found]
except Exception:  # noqa: BLE001 - k2 may be missing or built against another torch
    k2 = None


# --------------------------------------------------------------------------- activations


def swoosh_l_reference(x: Tensor) -> Tensor:
    """SwooshL(x) = log(1 + exp(x - 4)) - 0.08 x - 0.035 (pure torch, any device/dtype)."""
    return F.softplus(x - 4.0) - 0.08 * x - 0.035


def swoosh_r_reference(x: Tensor) -> Tensor:
    """SwooshR(x) = log(1 + exp(x - 1)) - 0.08 x - 0.313261687 (pure torch)."""
    return F.softplus(x - 1.0) - 0.08 * x - 0.313261687


def swoosh_l(x: Tensor) -> Tensor:
    """SwooshL; uses k2's fused kernel for CUDA tensors when ``import k2`` works."""
    if k2 is not None and x.is_cuda:
        return k2.swoosh_l(x).to(x.dtype)
    return swoosh_l_reference(x)


def swoosh_r(x: Tensor) -> Tensor:
    """SwooshR; uses k2's fused kernel for CUDA tensors when ``import k2`` works."""
    if k2 is not None and x.is_cuda:
        return k2.swoosh_r(x).to(x.dtype)
    return swoosh_r_reference(x)


class SwooshL(nn.Module):
    """:func:`swoosh_l` as a module."""

    def forward(self, x: Tensor) -> Tensor:
        return swoosh_l(x)


class SwooshR(nn.Module):
    """:func:`swoosh_r` as a module."""

    def forward(self, x: Tensor) -> Tensor:
        return swoosh_r(x)


class GradientOnly(nn.Identity):
    """Identity that keeps the place of one of icefall's gradient-only modules (``Balancer``,
    ``ScaleGrad``) in an ``nn.Sequential``, so that the indices of the modules after it (and so
    the checkpoint keys, e.g. ``encoder_embed.conv.4.weight``) are icefall's."""


def scaled_linear(d_in: int, d_out: int, scale: float, bias: bool = True) -> nn.Linear:
    """``nn.Linear`` whose default initialisation is multiplied by ``scale`` (small initial
    outputs for residual branches, as the paper's "ScaledLinear")."""
    lin = nn.Linear(d_in, d_out, bias=bias)
    with torch.no_grad():
        lin.weight.mul_(scale)
        if bias:
            lin.bias.mul_(scale)
    return lin


def ramp(t: float, points: tuple[tuple[float, float], ...]) -> float:
    """Piecewise-linear schedule through ``points`` ``((t0, v0), (t1, v1), ...)``, constant
    outside; ``t`` is the number of training batches seen."""
    if t <= points[0][0]:
        return points[0][1]
    for (t0, v0), (t1, v1) in zip(points, points[1:]):
        if t <= t1:
            return v0 + (v1 - v0) * (t - t0) / max(t1 - t0, 1e-9)
    return points[-1][1]


class _LimitParamValue(torch.autograd.Function):
    """Identity in forward; in backward, where ``x < lo`` (``x > hi``) a gradient that would make
    ``x`` smaller (larger) has its sign flipped, so optimisation moves ``x`` back into range.
    ``lo`` is a tensor (saved for backward: traceable by ``torch.compile``)."""

    @staticmethod
    def forward(ctx, x: Tensor, lo: Tensor, hi: float) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x, lo)
        ctx.hi = hi
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:  # type: ignore[override]
        x, lo = ctx.saved_tensors
        flip = ((grad > 0) & (x < lo)) | ((grad < 0) & (x > ctx.hi))
        return torch.where(flip, -grad, grad), None, None


def limit_param_value(x: Tensor, lo: float | Tensor, hi: float) -> Tensor:
    """``x`` unchanged, with gradients that keep it in ``[lo, hi]`` (icefall's
    ``limit_param_value``; ``lo`` a float or a 0-d tensor)."""
    if not isinstance(lo, Tensor):
        lo = torch.tensor(lo, dtype=x.dtype)  # a CPU scalar: no device copy
    return _LimitParamValue.apply(x, lo, hi)


# --------------------------------------------------------------------------- norms, bypass


_TINY = torch.finfo(torch.float32).tiny


class BiasNorm(nn.Module):
    """BiasNorm: ``x / RMS(x - b) * exp(g)`` over channels; ``b`` (D,) and scalar ``g`` are
    learned. Unlike LayerNorm it keeps the length information of ``x`` (no mean removal).
    No epsilon (as icefall: inputs of RMS 1e-2 are common, so even 1e-8 would show); the mean
    square is only kept above the smallest float32 so an all-equal frame gives 0, not NaN."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(dim))
        self.log_scale = nn.Parameter(torch.tensor(1.0))

    def forward(self, x: Tensor) -> Tensor:
        """x ``(..., D)`` → ``(..., D)``."""
        centred = x.float() - self.bias.float()  # statistics in fp32 (bf16 autocast)
        ms = centred.pow(2).mean(dim=-1, keepdim=True).clamp(min=_TINY)
        scale = ms.rsqrt() * self.log_scale.exp()
        return x * scale.to(x.dtype)


class Bypass(nn.Module):
    """Learned per-channel combination ``x_orig + c * (x - x_orig)`` (c=0: skip the module),
    icefall's ``BypassModule``.

    ``c`` (``bypass_scale``) is used as it is. In training its gradients keep it in
    ``[scale_min, 1]`` (``scale_min`` follows the caller's schedule: 0.9 early in training, so
    that every module learns, 0.2 later), and with ``skip_rate > 0`` whole sequences bypass the
    module (layer drop)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.bypass_scale = nn.Parameter(torch.full((dim,), 0.5))

    def forward(
        self,
        x_orig: Tensor,
        x: Tensor,
        scale_min: float | Tensor = 0.2,
        skip_rate: float | Tensor = 0.0,
    ) -> Tensor:
        """x_orig, x ``(B, T, D)`` → ``(B, T, D)``; ``scale_min`` / ``skip_rate`` floats or 0-d
        tensors (training only)."""
        c = self.bypass_scale
        if self.training:
            c = limit_param_value(c, scale_min, 1.0)
            if isinstance(skip_rate, Tensor) or skip_rate > 0.0:
                keep = torch.rand(x.shape[0], 1, 1, device=x.device) >= skip_rate
                c = c * keep.to(c.dtype)
        return x_orig + (x - x_orig) * c


# --------------------------------------------------------------------------- resampling in time

PADDING_MODES = ("masked", "icefall")


def fill_padding_with_last(x: Tensor, lens: Tensor) -> Tensor:
    """Replace frames ``t >= lens[b]`` by the last valid frame of each sequence, so that
    downsampling sees the same values whether a clip is padded in a batch or not."""
    t = torch.arange(x.shape[1], device=x.device)
    idx = torch.minimum(t[None, :], (lens - 1).clamp(min=0)[:, None])  # (B, T)
    return x.gather(1, idx[..., None].expand(-1, -1, x.shape[2]))


class Downsample(nn.Module):
    """Downsample time by ``factor`` (icefall's ``SimpleDownsample``): a learned
    softmax-weighted average of each group of ``factor`` frames.

    The last group of a clip is completed with the clip's own last valid frame
    (``padding="masked"``) or, as icefall does, with whatever the batch holds there, the
    batch's last frame repeated past its end (``padding="icefall"``).

    ``(B, T, D)``, lens ``(B,)`` → ``(B, ceil(T/factor), D)``, ``ceil(lens/factor)``."""

    def __init__(self, factor: int, padding: str = "masked") -> None:
        super().__init__()
        self.factor = factor
        self.padding = padding
        self.bias = nn.Parameter(torch.zeros(factor))

    def forward(self, x: Tensor, lens: Tensor) -> tuple[Tensor, Tensor]:
        b, t, d = x.shape
        f = self.factor
        t_out = (t + f - 1) // f
        if self.padding == "icefall":
            x = torch.cat([x, x[:, -1:].expand(b, t_out * f - t, d)], dim=1)
        else:
            x = fill_padding_with_last(F.pad(x, (0, 0, 0, t_out * f - t)), lens)
        w = self.bias.softmax(dim=0).to(x.dtype)
        y = (x.view(b, t_out, f, d) * w[:, None]).sum(dim=2)
        return y, (lens + f - 1).div(f, rounding_mode="floor")


def upsample(x: Tensor, factor: int, length: int) -> Tensor:
    """Repeat every frame ``factor`` times and cut to ``length`` frames: ``(B, T, D)`` →
    ``(B, length, D)``."""
    return x.repeat_interleave(factor, dim=1)[:, :length]


def convert_channels(x: Tensor, dim: int) -> Tensor:
    """Truncate or zero-pad the channel axis of ``(B, T, D)`` to ``dim`` channels."""
    if x.shape[-1] >= dim:
        return x[..., :dim]
    return F.pad(x, (0, dim - x.shape[-1]))


# --------------------------------------------------------------------------- attention


def compact_rel_positions(length: int, dim: int, device: torch.device | None = None) -> Tensor:
    """``(2*length - 1, dim)`` embeddings of the relative offsets ``-(length-1) .. length-1``
    (row ``c`` is offset ``c - (length - 1)``).

    Offsets are compressed logarithmically and mapped to a finite interval with ``atan``
    before a Fourier basis, so large offsets are told apart coarsely and small ones finely
    (the paper's compact relative positional encoding, icefall's
    ``CompactRelPositionalEncoding``). The last channel is a constant 1.
    """
    off = torch.arange(-(length - 1), length, device=device, dtype=torch.float32)[:, None]
    c = math.sqrt(dim)  # compression length: slope 1 around 0, logarithmic further out
    compressed = c * off.sign() * (torch.log(off.abs() + c) - math.log(c))
    angle = torch.atan(compressed / (dim / (2 * math.pi)))
    freqs = torch.arange(1, dim // 2 + 1, device=device, dtype=torch.float32)
    pe = torch.zeros(2 * length - 1, dim, device=device)
    pe[:, 0::2] = torch.cos(angle * freqs)
    pe[:, 1::2] = torch.sin(angle * freqs)
    pe[:, -1] = 1.0
    return pe


class RelPosAttentionWeights(nn.Module):
    """Multi-head attention weights with relative positions (icefall's
    ``RelPositionMultiheadAttentionWeights``), computed once per layer and shared by the
    layer's non-linear attention and its two self-attention modules.

    score[h, i, j] = q_i·k_j + p_i·P(j - i), where ``p`` is a small per-head positional query
    (``pos_head_dim``) and ``P`` a learned projection (``linear_pos``) of
    :func:`compact_rel_positions`. No 1/sqrt(d) factor: the query/key projection starts at that
    scale (``query_head_dim^-1/4`` each) and learns it. Padded keys get score -1000.

    ``(B, T, D)``, positions ``(2T-1, pos_dim)``, valid ``(B, T)`` → weights ``(B, H, T, T)``.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        query_head_dim: int,
        pos_head_dim: int,
        pos_dim: int,
    ) -> None:
        super().__init__()
        self.num_heads, self.qd, self.pd = num_heads, query_head_dim, pos_head_dim
        self.in_proj = scaled_linear(
            dim, (2 * query_head_dim + pos_head_dim) * num_heads, query_head_dim**-0.25
        )
        self.linear_pos = scaled_linear(pos_dim, num_heads * pos_head_dim, 0.05, bias=False)

    def forward(self, x: Tensor, pos: Tensor, valid: Tensor) -> Tensor:
        b, t, _ = x.shape
        h, qd, pd = self.num_heads, self.qd, self.pd
        proj = self.in_proj(x)
        q = proj[..., : h * qd].view(b, t, h, qd).transpose(1, 2)  # (B, H, T, qd)
        k = proj[..., h * qd : 2 * h * qd].view(b, t, h, qd).transpose(1, 2)
        p = proj[..., 2 * h * qd :].view(b, t, h, pd).transpose(1, 2)  # (B, H, T, pd)
        scores = q @ k.transpose(-1, -2)  # (B, H, T, T)

        pe = self.linear_pos(pos.to(x.dtype)).view(2 * t - 1, h, pd).permute(1, 2, 0)
        rel = p @ pe[None]  # (B, H, T, 2T-1): column c is offset c - (T-1)
        if t > 1:  # score (i, j) reads offset j - i: column (T-1) + j - i, at flat index
            # (T-1) + i(2T-2) + j of row-major (T, 2T-1): a view with rows 2T-2 long
            flat = rel.reshape(b, h, t * (2 * t - 1))[..., t - 1 : t - 1 + t * (2 * t - 2)]
            rel = flat.reshape(b, h, t, 2 * t - 2)[..., :t]
        scores = scores + rel

        scores = scores.masked_fill(~valid[:, None, None, :], -1000.0)
        return scores.softmax(dim=-1)


class SelfAttention(nn.Module):
    """Value path of attention using precomputed weights: ``(B, T, D)``, weights
    ``(B, H, T, T)`` → ``(B, T, D)``."""

    def __init__(self, dim: int, num_heads: int, value_head_dim: int) -> None:
        super().__init__()
        self.in_proj = nn.Linear(dim, num_heads * value_head_dim)
        self.out_proj = scaled_linear(num_heads * value_head_dim, dim, 0.05)

    def forward(self, x: Tensor, weights: Tensor) -> Tensor:
        b, h, t, _ = weights.shape
        v = self.in_proj(x).view(b, t, h, -1).transpose(1, 2)  # (B, H, T, dv)
        y = (weights @ v).transpose(1, 2).reshape(b, t, -1)
        return self.out_proj(y)


class NonlinAttention(nn.Module):
    """Non-linear attention: ``out(y ⊙ A (x ⊙ tanh(s)))`` with ``[s, x, y] = in(x)``, hidden
    ``3D/4`` channels and ``A`` the first head's attention weights ``(B, T, T)``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.hidden = 3 * dim // 4
        self.in_proj = nn.Linear(dim, 3 * self.hidden)
        self.out_proj = scaled_linear(self.hidden, dim, 0.05)

    def forward(self, x: Tensor, weights: Tensor) -> Tensor:
        """x ``(B, T, D)``, weights ``(B, T, T)`` → ``(B, T, D)``."""
        s, v, y = self.in_proj(x).chunk(3, dim=-1)
        v = weights @ (v * torch.tanh(s))
        return self.out_proj(v * y)


# --------------------------------------------------------------------------- conv / feed-forward


class FeedForward(nn.Module):
    """``out(dropout(SwooshL(in(x))))`` with ``hidden`` channels: ``(B, T, D)`` → ``(B, T, D)``."""

    def __init__(self, dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.in_proj = nn.Linear(dim, hidden)
        self.dropout = nn.Dropout(dropout)
        self.out_proj = scaled_linear(hidden, dim, 0.1)

    def forward(self, x: Tensor) -> Tensor:
        return self.out_proj(self.dropout(swoosh_l(self.in_proj(x))))


class ConvModule(nn.Module):
    """Zipformer convolution module: ``in_proj`` (D→2D) with a sigmoid gate, depthwise
    convolution over time (``kernel_size``), SwooshR, ``out_proj``. Padded frames are zeroed
    before the convolution, so valid outputs never read padding. ``(B, T, D)`` → ``(B, T, D)``."""

    def __init__(self, dim: int, kernel_size: int) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"zipformer: cnn_module_kernel must be odd, got {kernel_size}")
        self.in_proj = nn.Linear(dim, 2 * dim)
        self.depthwise_conv = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.out_proj = scaled_linear(dim, dim, 0.05)

    def forward(self, x: Tensor, valid: Tensor) -> Tensor:
        v, gate = self.in_proj(x).chunk(2, dim=-1)
        v = (v * torch.sigmoid(gate)).masked_fill(~valid[..., None], 0.0)
        v = self.depthwise_conv(v.transpose(1, 2)).transpose(1, 2)
        return self.out_proj(swoosh_r(v))


# --------------------------------------------------------------------------- subsampling


class ConvNeXt(nn.Module):
    """Residual ConvNeXt block on ``(B, C, T, F)``: depthwise 7×7, pointwise C→3C, SwooshL,
    pointwise 3C→C. With ``lens`` (``padding="masked"``) frames ``t >= lens`` are zeroed first,
    so time padding reads only zeros; without (icefall) valid frames near a clip's end read the
    batch's padding."""

    def __init__(self, channels: int, kernel: int = 7) -> None:
        super().__init__()
        self.depthwise_conv = nn.Conv2d(
            channels, channels, kernel, padding=kernel // 2, groups=channels
        )
        self.pointwise_conv1 = nn.Conv2d(channels, 3 * channels, 1)
        self.pointwise_conv2 = nn.Conv2d(3 * channels, channels, 1)
        with torch.no_grad():
            self.pointwise_conv2.weight.mul_(0.01)
            self.pointwise_conv2.bias.mul_(0.01)

    def forward(self, x: Tensor, lens: Tensor | None = None) -> Tensor:
        if lens is not None:
            valid = torch.arange(x.shape[2], device=x.device)[None, :] < lens[:, None]
            x = x * valid[:, None, :, None].to(x.dtype)
        return x + self.pointwise_conv2(swoosh_l(self.pointwise_conv1(self.depthwise_conv(x))))


class Conv2dSubsampling(nn.Module):
    """Fbank ``(B, T, F)`` at 100 frames/s → ``(B, (T-7)//2, dim)`` at 50 frames/s.

    ``conv``: three 3×3 convolutions (the second strides 2 in time and frequency, the third 2 in
    frequency; no time padding, so valid outputs read only valid inputs), each followed by
    SwooshR; then a :class:`ConvNeXt` block, a linear projection ``out`` to ``dim``, BiasNorm
    ``out_norm`` and dropout (icefall's ``Conv2dSubsampling``; ``conv`` keeps its
    ``nn.Sequential`` indices 0, 4, 7 for the convolutions).
    """

    def __init__(
        self,
        input_dim: int,
        dim: int,
        channels: tuple[int, int, int] = (8, 32, 128),
        dropout: float = 0.1,
        padding: str = "masked",
    ) -> None:
        super().__init__()
        c1, c2, c3 = channels
        freq = ((input_dim - 1) // 2 - 1) // 2
        if freq < 1:
            raise ValueError(f"zipformer: input_dim {input_dim} is too small (need >= 7 bins)")
        self.padding = padding
        self.conv = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=(0, 1)),
            GradientOnly(),  # icefall: ScaleGrad
            GradientOnly(),  # icefall: Balancer
            SwooshR(),
            nn.Conv2d(c1, c2, 3, stride=2),
            GradientOnly(),  # icefall: Balancer
            SwooshR(),
            nn.Conv2d(c2, c3, 3, stride=(1, 2)),
            GradientOnly(),  # icefall: Balancer
            SwooshR(),
        )
        self.convnext = ConvNeXt(c3)
        self.out = nn.Linear(c3 * freq, dim)
        self.out_norm = BiasNorm(dim)
        self.dropout = nn.Dropout(dropout)

    @staticmethod
    def out_lens(lens: Tensor) -> Tensor:
        """Valid output frames for ``lens`` input frames: ``(lens - 7) // 2`` (≥ 0)."""
        return (lens - 7).div(2, rounding_mode="floor").clamp(min=0)

    def forward(self, x: Tensor, lens: Tensor) -> tuple[Tensor, Tensor]:
        """x ``(B, T, F)``, lens ``(B,)`` → ``(B, T', dim)``, ``(B,)``."""
        if x.shape[1] < 9:  # too short for one output frame: pad (padding is never read)
            x = F.pad(x, (0, 0, 0, 9 - x.shape[1]))
        y = self.conv(x.unsqueeze(1))  # (B, C, T', F')
        out_lens = self.out_lens(lens)
        y = self.convnext(y, out_lens if self.padding == "masked" else None)
        b, c, t, f = y.shape
        y = self.out(y.permute(0, 2, 1, 3).reshape(b, t, c * f))
        return self.dropout(self.out_norm(y)), out_lens
