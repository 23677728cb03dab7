"""Checks shared by the encoder tests."""

from __future__ import annotations

import torch
from torch import nn


def assert_learns_two_bands(
    enc: nn.Module, frames: int, min_len: int, lr: float = 1e-2, steps: int = 50
) -> None:
    """A linear head on the mean encoder output tells low-band from high-band clips (16 clips
    of ``frames`` × 16 features, lengths ``min_len..frames``) within ``steps`` Adam steps: the
    loss falls below a tenth of its start and every clip is classified right."""
    torch.manual_seed(0)
    n, f = 16, 16
    labels = torch.arange(n) % 2
    feats = 0.3 * torch.randn(n, frames, f)
    feats[labels == 0, :, :8] += 1.0
    feats[labels == 1, :, 8:] += 1.0
    lens = torch.randint(min_len, frames + 1, (n,))
    head = nn.Linear(enc.output_dim, 2)
    opt = torch.optim.Adam([*enc.parameters(), *head.parameters()], lr=lr)
    losses = []
    for _ in range(steps):
        out, out_lens = enc(feats, lens)
        loss = nn.functional.cross_entropy(head(out.sum(1) / out_lens[:, None]), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0]
    with torch.no_grad():
        out, out_lens = enc.eval()(feats, lens)
        assert (head(out.sum(1) / out_lens[:, None]).argmax(-1) == labels).all()
