"""Transformer audio encoder over fbank with convolutional subsampling."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from toolkit.layers import (
    TransformerLayer,
    lengths_to_mask,
    maybe_checkpoint,
    sinusoidal_positions,
)
from toolkit.registry import ENCODERS


class Conv2dSubsampling(nn.Module):
    """Stride-2 3×3 convolutions over (time, freq): ``(B, T, F)`` → ``(B, T', D)``,
    ``T' ≈ T / factor`` (factor 4: two convolutions, 100 → 25 frames/s; factor 8: three).

    No padding along time, so a valid output frame only reads valid input frames: outputs never
    see padded inputs. Each convolution maps ``L`` frames to ``(L - 3) // 2 + 1``
    (:meth:`out_lens`; for factor 4, ``T' = ((T - 3) // 2 - 1) // 2 + 1``).
    """

    def __init__(self, input_dim: int, dim: int, channels: int = 64, factor: int = 4) -> None:
        super().__init__()
        if factor not in (2, 4, 8):
            raise ValueError(f"subsampling factor must be 2, 4 or 8, got {factor}")
        self.num_convs = {2: 1, 4: 2, 8: 3}[factor]
        layers: list[nn.Module] = []
        freq = input_dim
        for i in range(self.num_convs):
            layers += [nn.Conv2d(1 if i == 0 else channels, channels, 3, 2, (0, 1)), nn.GELU()]
            freq = (freq + 1) // 2
        # channels-last weights: oneDNN runs these convolutions (forward + backward) about 1.5x
        # faster on CPU than in the default layout, to the same numbers (float rounding);
        # saved state dicts hold the same values (layout is not part of a checkpoint's contract)
        self.conv = nn.Sequential(*layers).to(memory_format=torch.channels_last)
        self.proj = nn.Linear(channels * freq, dim)

    def out_lens(self, lens: Tensor) -> Tensor:
        """Valid output frames for ``lens`` input frames."""
        for _ in range(self.num_convs):
            lens = (lens - 3).div(2, rounding_mode="floor") + 1
        return lens.clamp(min=0)

    def forward(self, x: Tensor, lens: Tensor) -> tuple[Tensor, Tensor]:
        """x ``(B, T, F)`` → ``(B, T', D)``, lens ``(B,)``."""
        y = self.conv(x.unsqueeze(1))  # (B, C, T', F')
        b, c, t, f = y.shape
        return self.proj(y.permute(0, 2, 1, 3).reshape(b, t, c * f)), self.out_lens(lens)


@ENCODERS.register("transformer")
class TransformerEncoder(nn.Module):
    """Conv subsampling (÷``subsampling_factor`` in time; 4: 100 → 25 frames/s) + pre-norm
    Transformer layers with sinusoidal positions; ``conv_kernel > 0`` adds a Conformer-style
    depthwise-convolution module to every layer (local temporal patterns: onsets, rhythm).

    ``forward(features (B, T, F), feature_lens (B,)) -> (hidden (B, T', dim), lens (B,))``.
    Padded positions are masked out of attention, so valid outputs do not depend on padding.
    ``activation_checkpointing`` recomputes each layer in backward instead of storing its
    activations (less memory for bigger batches, about one more forward of compute).
    """

    def __init__(
        self,
        input_dim: int,
        dim: int = 256,
        num_layers: int = 6,
        num_heads: int = 4,
        ff_dim: int = 1024,
        dropout: float = 0.1,
        subsampling_channels: int = 64,
        subsampling_factor: int = 4,
        conv_kernel: int = 0,
        activation_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        self.activation_checkpointing = activation_checkpointing
        self.subsampling = Conv2dSubsampling(
            input_dim, dim, subsampling_channels, subsampling_factor
        )
        self.layers = nn.ModuleList(
            TransformerLayer(dim, num_heads, ff_dim, dropout, conv_kernel)
            for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        self.output_dim = dim

    def forward(self, features: Tensor, feature_lens: Tensor) -> tuple[Tensor, Tensor]:
        """features ``(B, T, F)``, feature_lens ``(B,)`` → hidden ``(B, T', D)``, lens ``(B,)``."""
        layers, lens = self.forward_layers(features, feature_lens)
        return layers[-1], lens

    def forward_layers(self, features: Tensor, feature_lens: Tensor) -> tuple[list[Tensor], Tensor]:
        """Every layer's output for layer-wise probing: ``num_layers + 1`` tensors ``(B, T', D)``
        (the block outputs, then the final normalised output = :meth:`forward`), padding zeroed."""
        x, lens = self.subsampling(features, feature_lens)
        x = self.dropout(x + sinusoidal_positions(x.shape[1], x.shape[2], x.device).to(x.dtype))
        mask = lengths_to_mask(lens, x.shape[1])
        attn_mask = mask.clone()
        attn_mask[:, 0] |= lens == 0  # an empty clip attends to one frame instead of giving NaN
        outs = []
        for layer in self.layers:
            x = maybe_checkpoint(layer, x, attn_mask, enabled=self.activation_checkpointing)
            outs.append(x.masked_fill(~mask[..., None], 0.0))
        outs.append(self.norm(x).masked_fill(~mask[..., None], 0.0))
        return outs, lens
