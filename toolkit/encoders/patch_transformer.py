"""AST/ViT-style patch Transformer over fbank (Gong et al. 2021, "AST: Audio Spectrogram
Transformer"): 2-D patches of the (time, frequency) plane, a pre-norm Transformer over all
patches, then one vector per time column of patches."""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from toolkit.layers import TransformerLayer, lengths_to_mask, sinusoidal_positions
from toolkit.registry import ENCODERS


def num_patches(length: Tensor, patch: int, stride: int) -> Tensor:
    """Patches needed to cover ``length`` frames (``(B,)`` long → ``(B,)`` long).

    Patches start every ``stride`` frames and the last one may run past the end (it reads zeros
    there), so every frame is covered: ``ceil(max(L - patch, 0) / stride) + 1``, and 0 for
    ``L == 0``. A clip shorter than one patch gives one patch.
    """
    n = (length - patch).clamp(min=0).add(stride - 1).div(stride, rounding_mode="floor") + 1
    return torch.where(length > 0, n, torch.zeros_like(n))


@ENCODERS.register("patch_transformer")
class PatchTransformerEncoder(nn.Module):
    """Patch Transformer: ``patch_time × patch_freq`` patches taken every ``stride_time`` frames
    and ``stride_freq`` bins (overlap allowed), a linear patch embedding, 2-D positions, pre-norm
    Transformer layers over all patches (SDPA), then the frequency patches of each time column
    pooled into one vector (``freq_pool``: ``mean`` or a learned ``attention`` pooling).

    ``forward(features (B, T, F), feature_lens (B,)) -> (hidden (B, T', dim), lens (B,))`` with
    ``T'`` time columns, ``lens = ceil(max(feature_lens - patch_time, 0) / stride_time) + 1``
    (0 for an empty clip). Output rate = input rate / ``stride_time`` (default: 100 → 10
    vectors/s). Frames past a clip's length are zeroed before patching and patches of invalid
    columns are masked out of attention as keys, so valid outputs never depend on padding.

    Time positions are sinusoidal (any length, and a patch's position never depends on how far
    the batch is padded); frequency positions are sinusoidal too (``positions: sinusoidal``, the
    two halves of ``dim`` concatenated) or a learned table per frequency patch added to a
    full-width sinusoidal time table (``positions: learned``).
    """

    def __init__(
        self,
        input_dim: int,
        dim: int = 256,
        num_layers: int = 6,
        num_heads: int = 4,
        ff_dim: int = 1024,
        dropout: float = 0.1,
        patch_time: int = 16,
        patch_freq: int = 16,
        stride_time: int = 10,
        stride_freq: int = 16,
        positions: Literal["sinusoidal", "learned"] = "sinusoidal",
        freq_pool: Literal["mean", "attention"] = "mean",
        cls_token: bool = False,
    ) -> None:
        super().__init__()
        for name, patch, stride in (
            ("time", patch_time, stride_time),
            ("freq", patch_freq, stride_freq),
        ):
            if patch < 1 or stride < 1 or stride > patch:
                raise ValueError(
                    f"patch_{name}={patch}, stride_{name}={stride}: need 1 <= stride <= patch "
                    "(a larger stride would skip frames)"
                )
        if positions not in ("sinusoidal", "learned"):
            raise ValueError(f"positions must be 'sinusoidal' or 'learned', got {positions!r}")
        if freq_pool not in ("mean", "attention"):
            raise ValueError(f"freq_pool must be 'mean' or 'attention', got {freq_pool!r}")
        self.patch = (patch_time, patch_freq)
        self.stride = (stride_time, stride_freq)
        self.num_freq_patches = int(num_patches(torch.tensor(input_dim), patch_freq, stride_freq))
        self.embed = nn.Conv2d(1, dim, self.patch, self.stride)  # = linear map of each patch
        self.freq_pos = (
            nn.Parameter(torch.randn(self.num_freq_patches, dim) * 0.02)
            if positions == "learned"
            else None
        )
        self.cls = nn.Parameter(torch.randn(dim) * 0.02) if cls_token else None
        self.layers = nn.ModuleList(
            TransformerLayer(dim, num_heads, ff_dim, dropout) for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(dim)
        self.pool_query = nn.Parameter(torch.zeros(dim)) if freq_pool == "attention" else None
        self.dropout = nn.Dropout(dropout)
        self.output_dim = dim
        self.frame_stride = stride_time  # input frames per output vector

    def out_lens(self, lens: Tensor) -> Tensor:
        """Valid time columns for ``lens`` input frames."""
        return num_patches(lens, self.patch[0], self.stride[0])

    def _position_table(self, nt: int, nf: int, device: torch.device) -> Tensor:
        """``(nt, nf, dim)`` position embeddings of the patch grid."""
        d = self.output_dim
        if self.freq_pos is None:
            time = sinusoidal_positions(nt, d // 2, device)[:, None, :].expand(nt, nf, d // 2)
            freq = sinusoidal_positions(nf, d - d // 2, device)[None].expand(nt, nf, d - d // 2)
            return torch.cat([time, freq], dim=-1)
        return sinusoidal_positions(nt, d, device)[:, None, :] + self.freq_pos[None, :nf]

    def forward_with_cls(
        self, features: Tensor, feature_lens: Tensor
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """Like :meth:`forward`, plus the final CLS vector ``(B, dim)`` (None without
        ``cls_token``) for AST-style CLS pooling."""
        b, t, f = features.shape
        (pt, pf), (st, sf) = self.patch, self.stride
        lens = self.out_lens(feature_lens)
        nt = int(num_patches(torch.tensor(max(t, 1)), pt, st))
        nf = self.num_freq_patches
        frame_mask = lengths_to_mask(feature_lens, t)
        x = features.masked_fill(~frame_mask[..., None], 0.0)
        x = F.pad(x, (0, (nf - 1) * sf + pf - f, 0, (nt - 1) * st + pt - t))  # zeros
        x = self.embed(x.unsqueeze(1))  # (B, D, nt, nf)
        x = x.permute(0, 2, 3, 1) + self._position_table(nt, nf, x.device).to(x.dtype)
        x = self.dropout(x.reshape(b, nt * nf, -1))
        col_mask = lengths_to_mask(lens, nt)  # (B, nt)
        key_mask = col_mask[:, :, None].expand(b, nt, nf).reshape(b, nt * nf)
        if self.cls is not None:
            x = torch.cat([self.cls.to(x.dtype).expand(b, 1, -1), x], dim=1)
            key_mask = torch.cat([key_mask.new_ones(b, 1), key_mask], dim=1)
        else:
            key_mask = key_mask.clone()
            key_mask[:, 0] |= lens == 0  # an empty clip attends to one patch instead of NaN
        for layer in self.layers:
            x = layer(x, key_mask)
        x = self.norm(x)
        cls = None
        if self.cls is not None:
            cls, x = x[:, 0], x[:, 1:]
        x = x.reshape(b, nt, nf, -1)
        if self.pool_query is None:
            x = x.mean(dim=2)
        else:
            weights = (x @ self.pool_query.to(x.dtype) / math.sqrt(x.shape[-1])).softmax(dim=2)
            x = (weights[..., None] * x).sum(dim=2)
        return x.masked_fill(~col_mask[..., None], 0.0), lens, cls

    def forward(self, features: Tensor, feature_lens: Tensor) -> tuple[Tensor, Tensor]:
        """features ``(B, T, F)``, feature_lens ``(B,)`` → hidden ``(B, T', D)``, lens ``(B,)``."""
        hidden, lens, _ = self.forward_with_cls(features, feature_lens)
        return hidden, lens
