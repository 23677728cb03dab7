import torch

from toolkit.evaluate.pooling import mean_std_pool
from toolkit.layers import masked_mean as mean_pool


def test_mean_pool_ignores_padding():
    hidden = torch.tensor(
        [[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]], [[5.0, -1.0], [-9.0, 9.0], [7.0, 7.0]]]
    )
    out = mean_pool(hidden, torch.tensor([2, 1]))
    assert out.shape == (2, 2)
    torch.testing.assert_close(out, torch.tensor([[2.0, 3.0], [5.0, -1.0]]))


def test_mean_std_pool_matches_per_sequence_stats():
    torch.manual_seed(0)
    hidden = torch.randn(3, 7, 4)
    lens = torch.tensor([7, 3, 1])
    out = mean_std_pool(hidden, lens)
    assert out.shape == (3, 8)
    for b, n in enumerate(lens.tolist()):
        x = hidden[b, :n]
        expected = torch.cat([x.mean(0), x.std(0, unbiased=False)])
        torch.testing.assert_close(out[b], expected)
    assert torch.all(out[2, 4:] == 0)  # single frame: zero std


def test_zero_length_is_finite():
    out = mean_std_pool(torch.randn(2, 3, 5), torch.tensor([0, 3]))
    assert torch.isfinite(out).all()
    assert torch.all(out[0] == 0)
