"""Transformer decoder: shapes, padding invariance, KV-cached decoding equals the full forward."""

from __future__ import annotations

import pytest
import torch

from toolkit.config import ConfigError
from toolkit.decoders.transformer import TransformerDecoder
from toolkit.registry import DECODERS

V, E = 11, 12


def tiny(**kw) -> TransformerDecoder:
    torch.manual_seed(0)
    args = dict(vocab_size=V, encoder_dim=E, dim=16, num_layers=2, num_heads=2, ff_dim=32)
    args.update(dropout=0.0, max_len=20)
    args.update(kw)
    return TransformerDecoder(**args).eval()


def inputs(b: int = 3, t: int = 7, n: int = 6):
    g = torch.Generator().manual_seed(1)
    enc = torch.randn(b, t, E, generator=g)
    lens = torch.tensor([t, 4, 2][:b])
    tokens = torch.randint(1, V, (b, n), generator=g)
    return tokens, enc, lens


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"positions": "learned"},
        {"tie_embeddings": False},
        {"norm_first": False},
        {"dim": 12},  # encoder_dim == dim: no projection
    ],
)
def test_cached_steps_equal_full_forward(kw):
    dec = tiny(**kw)
    tokens, enc, lens = inputs()
    full = dec(tokens, enc, lens)
    assert full.shape == (3, 6, V) and dec.output_dim == V
    cache = dec.init_cache(enc, lens)
    steps = torch.cat([dec.step(tokens[:, i : i + 1], cache) for i in range(6)], dim=1)
    assert cache.length == 6 and cache.self_k[0].shape == (3, 2, 6, dec.dim // 2)
    assert torch.allclose(steps, full, atol=1e-5)
    # multi-token chunks (with and without a cache before them): same logits
    cache = dec.init_cache(enc, lens)
    chunks = [dec.step(tokens[:, :2], cache), dec.step(tokens[:, 2:5], cache)]
    chunks.append(dec.step(tokens[:, 5:], cache))
    assert torch.allclose(torch.cat(chunks, 1), full, atol=1e-5)


def test_projection_only_when_dims_differ():
    assert isinstance(tiny().enc_proj, torch.nn.Linear)
    assert isinstance(tiny(dim=12).enc_proj, torch.nn.Identity)
    assert tiny().out_proj is None and tiny(tie_embeddings=False).out_proj is not None


def test_encoder_padding_and_token_padding_do_not_matter():
    dec = tiny()
    tokens, enc, lens = inputs()
    ref = dec(tokens, enc, lens)
    # garbage in the padded encoder frames and extra padded frames
    enc2 = torch.cat([enc, torch.randn(3, 5, E)], dim=1)
    mask = torch.arange(12)[None, :] < lens[:, None]
    enc2 = torch.where(mask[..., None], enc2, torch.randn_like(enc2) * 100)
    assert torch.allclose(dec(tokens, enc2, lens), ref, atol=1e-5)
    # right-padded tokens never change the valid positions (causal)
    tok2 = torch.cat([tokens, torch.zeros(3, 3, dtype=torch.long)], dim=1)
    assert torch.allclose(dec(tok2, enc, lens)[:, :6], ref, atol=1e-5)
    # one clip alone equals its row in the batch
    assert torch.allclose(dec(tokens[2:], enc[2:, :2], lens[2:]), ref[2:], atol=1e-5)


def test_causal_and_bidirectional_masked_inputs():
    dec = tiny()
    tokens, enc, lens = inputs()
    # causal: changing a later token leaves earlier logits unchanged
    tok2 = tokens.clone()
    tok2[:, 4] = (tok2[:, 4] + 1) % V
    a, b = dec(tokens, enc, lens), dec(tok2, enc, lens)
    assert torch.allclose(a[:, :4], b[:, :4], atol=1e-6) and not torch.allclose(a[:, 4:], b[:, 4:])
    # all-mask input: tokens are irrelevant; bidirectional with key padding by token_lens
    masked = torch.ones_like(tokens, dtype=torch.bool)
    tl = torch.tensor([6, 3, 5])
    p1 = dec(tokens, enc, lens, causal=False, token_lens=tl, masked=masked)
    p2 = dec(tok2, enc, lens, causal=False, token_lens=tl, masked=masked)
    assert torch.allclose(p1, p2)
    longer = torch.cat([tokens, tokens[:, :2]], 1)
    p3 = dec(longer, enc, lens, False, tl, torch.ones_like(longer, dtype=torch.bool))
    for i, n in enumerate(tl.tolist()):
        assert torch.allclose(p3[i, :n], p1[i, :n], atol=1e-5)


def test_gradients_flow_and_errors():
    dec = tiny(dropout=0.1).train()
    tokens, enc, lens = inputs()
    enc.requires_grad_(True)
    dec(tokens, enc, lens).logsumexp(-1).sum().backward()
    assert enc.grad is not None and enc.grad[1, 4:].abs().sum() == 0  # padding gets no gradient
    assert all(p.grad is not None for n, p in dec.named_parameters() if n != "mask_embedding")
    with pytest.raises(ValueError, match="max_len 20"):
        dec(torch.ones(1, 21, dtype=torch.long), enc[:1], lens[:1])
    with pytest.raises(ValueError, match="divisible"):
        tiny(num_heads=3)


def test_registry_build_and_yaml_errors():
    dec = DECODERS.build(
        {"name": "transformer", "dim": 8, "num_layers": 1, "num_heads": 2, "ff_dim": 16},
        key="objective.decoder",
        vocab_size=V,
        encoder_dim=E,
    )
    assert isinstance(dec, TransformerDecoder)
    with pytest.raises(
        ConfigError, match=r"objective\.decoder\.name: unknown decoder 'lstm'; known: .*transformer"
    ):
        DECODERS.build({"name": "lstm"}, key="objective.decoder", vocab_size=V, encoder_dim=E)
    with pytest.raises(ConfigError, match=r"objective\.decoder\.positions: expected"):
        DECODERS.build(
            {"name": "transformer", "positions": "rotary"},
            key="objective.decoder",
            vocab_size=V,
            encoder_dim=E,
        )
    with pytest.raises(ConfigError, match=r"objective\.decoder\.layers: unknown key .*num_layers"):
        DECODERS.build(
            {"name": "transformer", "layers": 2},
            key="objective.decoder",
            vocab_size=V,
            encoder_dim=E,
        )
