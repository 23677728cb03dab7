"""Transformer text encoder over SentencePiece ids, mean-pooled over valid tokens."""

from __future__ import annotations

from torch import Tensor, nn

from toolkit.layers import TransformerLayer, lengths_to_mask
from toolkit.registry import TEXT_ENCODERS


@TEXT_ENCODERS.register("transformer")
class TextTransformer(nn.Module):
    """``forward(tokens (B, L), lens (B,)) -> (B, dim)``: embeddings + learned positions +
    pre-norm Transformer layers, mean-pooled over non-pad tokens."""

    def __init__(
        self,
        vocab_size: int,
        dim: int = 256,
        num_layers: int = 4,
        num_heads: int = 4,
        ff_dim: int = 1024,
        max_len: int = 128,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim)
        self.pos = nn.Embedding(max_len, dim)
        self.layers = nn.ModuleList(
            TransformerLayer(dim, num_heads, ff_dim, dropout) for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(dim)
        self.max_len = max_len
        self.output_dim = dim
        nn.init.normal_(self.embed.weight, std=0.02)
        nn.init.normal_(self.pos.weight, std=0.01)

    def forward(self, tokens: Tensor, lens: Tensor) -> Tensor:
        """tokens ``(B, L)`` long, lens ``(B,)`` → pooled ``(B, dim)``."""
        tokens = tokens[:, : self.max_len]
        lens = lens.clamp(max=self.max_len)
        x = self.embed(tokens) + self.pos.weight[: tokens.shape[1]]
        mask = lengths_to_mask(lens, tokens.shape[1])
        for layer in self.layers:
            x = layer(x, mask)
        x = self.norm(x) * mask[..., None]
        return x.sum(1) / lens.clamp(min=1)[:, None].to(x.dtype)
