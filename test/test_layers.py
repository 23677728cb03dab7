"""toolkit.layers: the attention kernel choice of MultiHeadSelfAttention."""

from __future__ import annotations

import torch

from toolkit.layers import FrozenPretrained, MultiHeadSelfAttention, attention_kernels


def test_cpu_bf16_attention_uses_the_matmul_kernel_and_fp32_keeps_torchs_choice():
    fp32, bf16 = torch.zeros(1, 1, 2, 4), torch.zeros(1, 1, 2, 4, dtype=torch.bfloat16)
    assert torch.backends.cuda.flash_sdp_enabled()
    with attention_kernels(bf16):
        assert (
            not torch.backends.cuda.flash_sdp_enabled() and torch.backends.cuda.math_sdp_enabled()
        )
    with attention_kernels(fp32):
        assert torch.backends.cuda.flash_sdp_enabled()
    assert torch.backends.cuda.flash_sdp_enabled()  # restored


def test_bf16_autocast_attention_matches_fp32_and_ignores_masked_keys():
    torch.manual_seed(0)
    attn = MultiHeadSelfAttention(16, 4).eval()
    x = torch.randn(3, 7, 16)
    mask = torch.ones(3, 7, dtype=torch.bool)
    mask[1, 4:] = False
    ref = attn(x, mask)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = attn(x, mask)
        x2 = x.clone()
        x2[1, 4:] = 100.0  # masked keys change: row 1 must not
        low2 = attn(x2, mask)
    assert low.dtype == torch.bfloat16
    torch.testing.assert_close(low.float(), ref, atol=3e-2, rtol=3e-2)
    torch.testing.assert_close(low2[1, :4], low[1, :4])


class _Wrapper(FrozenPretrained):
    def __init__(self, freeze: bool) -> None:
        super().__init__()
        self.model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.5))
        self.head = torch.nn.Linear(2, 1)
        self.set_frozen(freeze)


def test_a_frozen_pretrained_model_stays_in_eval_mode_without_gradients():
    frozen, free = _Wrapper(True), _Wrapper(False)
    for w in (frozen, free):
        w.train()
    assert frozen.training and frozen.head.training and not frozen.model.training
    assert not any(p.requires_grad for p in frozen.model.parameters())
    assert all(p.requires_grad for p in frozen.head.parameters())
    assert free.model.training and all(p.requires_grad for p in free.model.parameters())
    assert frozen.train(False) is frozen and not frozen.training
