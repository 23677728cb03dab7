"""Token padding shared by tokenizers and evaluation heads (toolkit.text.tokenizer.pad_ids)."""

from __future__ import annotations

import torch

from toolkit.text.tokenizer import pad_ids


def test_pad_ids_right_pads_and_reports_lengths():
    ids, lens = pad_ids([[5, 6, 7], [8], []], pad_id=1)
    assert ids.tolist() == [[5, 6, 7], [8, 1, 1], [1, 1, 1]]
    assert lens.tolist() == [3, 1, 0] and ids.dtype == lens.dtype == torch.long
    empty, no_lens = pad_ids([])
    assert empty.shape == (0, 0) and no_lens.shape == (0,)
