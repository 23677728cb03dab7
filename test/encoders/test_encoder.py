"""Transformer encoder: shapes, output_dim, padding never changes valid outputs."""

from __future__ import annotations

import pytest
import torch

from toolkit.encoders.transformer import TransformerEncoder


@pytest.mark.parametrize("factor,conv", [(4, 0), (8, 0), (4, 7)])
def test_padding_invariance_and_shapes(factor, conv):
    torch.manual_seed(0)
    enc = TransformerEncoder(
        input_dim=80,
        dim=64,
        num_layers=2,
        num_heads=4,
        ff_dim=128,
        subsampling_factor=factor,
        conv_kernel=conv,
    ).eval()
    assert enc.output_dim == 64
    a, b = torch.randn(1, 200, 80), torch.randn(1, 120, 80)
    batch = torch.zeros(2, 200, 80) + 7.0  # garbage in the padding
    batch[0], batch[1, :120] = a[0], b[0]
    out, lens = enc(batch, torch.tensor([200, 120]))
    assert out.shape == (2, int(lens.max()), 64)
    alone, alone_lens = enc(b, torch.tensor([120]))
    n = int(alone_lens[0])
    expect = 120
    for _ in range({4: 2, 8: 3}[factor]):
        expect = (expect - 3) // 2 + 1
    assert lens[1] == n == expect
    torch.testing.assert_close(out[1, :n], alone[0, :n], rtol=1e-5, atol=1e-5)
    assert torch.all(out[1, n:] == 0)


def test_too_short_input_gives_no_nan():
    enc = TransformerEncoder(input_dim=80, dim=32, num_layers=1, num_heads=2, ff_dim=64).eval()
    out, lens = enc(torch.randn(2, 40, 80), torch.tensor([40, 3]))
    assert lens.tolist()[1] == 0 and torch.isfinite(out).all()
