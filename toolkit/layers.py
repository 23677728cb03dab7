"""Building blocks shared by encoders, text towers, decoders, objectives and evaluation heads:
masks, masked mean and attention pooling over valid frames, device choice, attention/conv
layers. Each is written once here."""

from __future__ import annotations

import math
from contextlib import AbstractContextManager, nullcontext

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel


def lengths_to_mask(lens: Tensor, max_len: int | None = None) -> Tensor:
    """``(B,)`` lengths → ``(B, T)`` bool mask, True on valid positions."""
    max_len = int(lens.max()) if max_len is None else max_len
    return torch.arange(max_len, device=lens.device)[None, :] < lens[:, None]


def masked_mean(x: Tensor, lens: Tensor) -> Tensor:
    """``(B, T, D), (B,) → (B, D)`` mean of the valid frames (frames ``>= lens[b]`` never leak,
    whatever they hold; zeros for a clip without frames)."""
    mask = torch.arange(x.shape[1], device=x.device)[None, :] < lens.to(x.device)[:, None]
    x = x.masked_fill(~mask[:, :, None], 0.0)
    return x.sum(dim=1) / mask.sum(dim=1, keepdim=True).clamp_min(1).to(x.dtype)


class FrozenPretrained(nn.Module):
    """Base of a wrapper around a pretrained ``self.model`` (a Hugging Face text tower or LM)
    that may be frozen: :meth:`set_frozen` turns its gradients off, and a frozen model stays in
    eval mode (no dropout) whatever :meth:`train` is called with."""

    model: nn.Module
    freeze: bool = False

    def set_frozen(self, freeze: bool) -> None:
        """Freeze (no gradients, eval mode) or leave ``self.model`` trainable."""
        self.freeze = freeze
        if freeze:
            self.model.requires_grad_(False)
            self.model.eval()

    def train(self, mode: bool = True) -> FrozenPretrained:
        """Like :meth:`nn.Module.train`, but a frozen ``self.model`` stays in eval mode."""
        super().train(mode)
        if self.freeze:
            self.model.eval()
        return self


class AttentionPool(nn.Module):
    """Multi-head attention pooling ``(B, T, D), (B,) → (B, D)``: head ``h`` scores every valid
    frame with a learned query (``q_h·x_t / sqrt(D)``, softmax over the valid frames) and
    averages its own contiguous group of ``D / H`` channels with those weights. ``H·D``
    parameters; queries start at zero, so the untrained pool is the masked mean."""

    def __init__(self, dim: int, heads: int = 4) -> None:
        super().__init__()
        if not 1 <= heads <= dim:
            raise ValueError(f"attention pooling: heads must be in [1, dim={dim}], got {heads}")
        self.heads, self.scale = heads, 1.0 / math.sqrt(dim)
        self.query = nn.Parameter(torch.zeros(heads, dim))
        # channel d belongs to head group[d] (contiguous, near-equal groups)
        self.register_buffer("group", torch.arange(dim) * heads // dim, persistent=False)

    def _valid(self, x: Tensor, lens: Tensor) -> tuple[Tensor, Tensor]:
        mask = torch.arange(x.shape[1], device=x.device)[None, :] < lens.to(x.device)[:, None]
        return mask, x.masked_fill(~mask[:, :, None], 0.0)

    def _weights(self, mask: Tensor, x: Tensor) -> Tensor:
        scores = (x @ self.query.t()) * self.scale  # (B, T, H)
        scores = scores.masked_fill(~mask[:, :, None], float("-inf"))
        return torch.softmax(scores, dim=1).masked_fill(~mask[:, :, None], 0.0)  # empty: 0

    def attention(self, x: Tensor, lens: Tensor) -> Tensor:
        """``(B, T, H)`` weights: softmax over the valid frames, 0 on padding."""
        return self._weights(*self._valid(x, lens))

    def forward(self, x: Tensor, lens: Tensor) -> Tensor:
        mask, x = self._valid(x, lens)
        weights = self._weights(mask, x)
        b, t, d = x.shape
        if d % self.heads == 0:  # equal groups: one batched matmul over (B, H)
            grouped = x.view(b, t, self.heads, d // self.heads)
            return torch.einsum("bth,bthc->bhc", weights, grouped).reshape(b, d)
        return (weights[:, :, self.group] * x).sum(dim=1)


def resolve_device(name: str) -> torch.device:
    """``"auto"`` → CUDA if available, else CPU; any other name as given (``"cuda"`` without a
    visible CUDA device raises ``ValueError``)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if str(name).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but no CUDA device is visible")
    return torch.device(name)


def maybe_checkpoint(layer: nn.Module, *args, enabled: bool) -> Tensor:
    """``layer(*args)``; with ``enabled`` and autograd on, under activation checkpointing: the
    layer's activations are not kept but recomputed in backward (same RNG draws, so dropout and
    random layer skipping give the same result), trading compute for memory."""
    if enabled and torch.is_grad_enabled():
        return torch.utils.checkpoint.checkpoint(layer, *args, use_reentrant=False)
    return layer(*args)


def sinusoidal_positions(length: int, dim: int, device: torch.device | None = None) -> Tensor:
    """``(length, dim)`` sinusoidal position table (Vaswani et al. 2017)."""
    pos = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    inv = torch.exp(
        torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim)
    )
    table = torch.zeros(length, dim, device=device)
    table[:, 0::2] = torch.sin(pos * inv)
    table[:, 1::2] = torch.cos(pos * inv[: dim // 2])
    return table


class HeadedAttention(nn.Module):
    """Base of the multi-head attention layers: ``dim`` split into ``num_heads`` heads, and
    :meth:`attend`, one ``scaled_dot_product_attention`` (flash on GPU; kernels of
    :func:`attention_kernels`) followed by the subclass's output projection ``self.out``.
    Subclasses create their projections themselves (their order fixes the initial weights)."""

    out: nn.Linear

    def __init__(self, dim: int, num_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.dropout = dropout

    def split_heads(self, x: Tensor) -> Tensor:
        """``(B, T, D)`` → ``(B, H, T, D / H)``."""
        b, t, d = x.shape
        return x.view(b, t, self.num_heads, d // self.num_heads).transpose(1, 2)

    def attend(
        self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None, causal: bool = False
    ) -> Tensor:
        """Queries ``(B, H, L, Dh)`` over keys/values ``(B, H, S, Dh)``; ``mask`` broadcastable
        to ``(B, H, L, S)``, True where attention is allowed (``causal`` applies without one)
        → ``self.out`` of the merged heads ``(B, L, D)``."""
        with attention_kernels(q):
            y = F.scaled_dot_product_attention(
                q,
                k,
                v,
                attn_mask=mask,
                dropout_p=self.dropout if self.training else 0.0,
                is_causal=causal and mask is None,
            )
        b, h, n, dh = y.shape
        return self.out(y.transpose(1, 2).reshape(b, n, h * dh))


class MultiHeadSelfAttention(HeadedAttention):
    """Self-attention over ``(B, T, D)`` with one fused query/key/value projection."""

    def __init__(self, dim: int, num_heads: int, dropout: float = 0.0) -> None:
        super().__init__(dim, num_heads, dropout)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: Tensor, key_mask: Tensor | None = None, causal: bool = False) -> Tensor:
        """x ``(B, T, D)``; key_mask ``(B, T)`` True on valid keys."""
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.num_heads, d // self.num_heads).unbind(2)
        q, k, v = (z.transpose(1, 2) for z in (q, k, v))  # (B, H, T, Dh)
        mask = None if key_mask is None else key_mask[:, None, None, :]
        return self.attend(q, k, v, mask, causal)


def attention_kernels(q: Tensor) -> AbstractContextManager:
    """The ``scaled_dot_product_attention`` kernels for queries ``q``: on CPU in bf16 (CPU bf16
    autocast) the plain matmul-softmax kernel, which trained 1.6x faster there than the fused CPU
    kernel (forward + backward, 34 x 4 heads x 175 frames: 24 vs 38 ms on 2 Zen cores); the fused
    one stays faster in fp32 and at inference (750 frames: 23 vs 41 ms). Elsewhere torch's
    choice."""
    if q.device.type == "cpu" and q.dtype == torch.bfloat16:
        return sdpa_kernel(SDPBackend.MATH)
    return nullcontext()


class ConvModule(nn.Module):
    """Conformer convolution module: pointwise conv + GLU, depthwise conv over time, norm, SiLU,
    pointwise conv. Padded frames are zeroed first, so valid outputs never see padding."""

    def __init__(self, dim: int, kernel_size: int, dropout: float = 0.0) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"conv kernel_size must be odd, got {kernel_size}")
        self.pointwise_in = nn.Linear(dim, 2 * dim)
        self.depthwise = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.pointwise_out = nn.Linear(dim, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """x ``(B, T, D)``, mask ``(B, T)`` True on valid frames → ``(B, T, D)``."""
        y = F.glu(self.pointwise_in(x), dim=-1)
        if mask is not None:
            y = y * mask[..., None].to(y.dtype)
        y = self.depthwise(y.transpose(1, 2)).transpose(1, 2)
        return self.drop(self.pointwise_out(F.silu(self.norm(y))))


class TransformerLayer(nn.Module):
    """Pre-norm Transformer layer: ``x + MHSA(LN(x))``, optionally ``x + Conv(LN(x))``
    (Conformer-style, ``conv_kernel > 0``), then ``x + FFN(LN(x))``."""

    def __init__(
        self, dim: int, num_heads: int, ff_dim: int, dropout: float = 0.1, conv_kernel: int = 0
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = MultiHeadSelfAttention(dim, num_heads, dropout)
        self.conv = ConvModule(dim, conv_kernel, dropout) if conv_kernel > 0 else None
        self.norm_conv = nn.LayerNorm(dim) if conv_kernel > 0 else None
        self.norm2 = nn.LayerNorm(dim)
        self.ff = nn.Sequential(
            nn.Linear(dim, ff_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(ff_dim, dim)
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, key_mask: Tensor | None = None) -> Tensor:
        """x ``(B, T, D)`` → ``(B, T, D)``; key_mask ``(B, T)`` True on valid positions."""
        x = x + self.drop(self.attn(self.norm1(x), key_mask))
        if self.conv is not None:
            x = x + self.conv(self.norm_conv(x), key_mask)
        return x + self.drop(self.ff(self.norm2(x)))
