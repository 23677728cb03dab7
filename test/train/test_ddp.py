"""2-process DDP (gloo): loss and gradients equal one process on the same global batch, also
when the ranks hold different batch sizes."""

from __future__ import annotations

import pytest
import torch
from ddp_check import ddp_step_and_save, single_process_step, spawn_and_compare

from toolkit.encoders.transformer import TransformerEncoder
from toolkit.frontends.fbank import Fbank
from toolkit.model import AudioModel
from toolkit.objectives.contrastive import Contrastive

SIZES = [3, 5]  # unequal per-rank batch sizes


def make_model() -> AudioModel:
    torch.manual_seed(0)
    enc = TransformerEncoder(80, dim=32, num_layers=1, num_heads=2, ff_dim=64, dropout=0.0)
    text = {
        "name": "transformer",
        "dim": 32,
        "num_layers": 1,
        "num_heads": 2,
        "ff_dim": 64,
        "dropout": 0.0,
    }
    return AudioModel(Fbank(), enc, Contrastive(32, 30, text, embed_dim=16))


def global_batch() -> dict:
    g = torch.Generator().manual_seed(1)
    n = sum(SIZES)
    lens = torch.randint(4000, 8000, (n,), generator=g)
    audio = torch.randn(n, 8000, generator=g) * (torch.arange(8000)[None] < lens[:, None])
    tlens = torch.randint(3, 9, (n,), generator=g)
    tokens = torch.randint(4, 30, (n, 9), generator=g) * (torch.arange(9)[None] < tlens[:, None])
    return {"audio": audio, "audio_lens": lens, "text_tokens": tokens, "text_lens": tlens}


def rank_slice(batch: dict, rank: int) -> dict:
    s = sum(SIZES[:rank])
    part = {k: v[s : s + SIZES[rank]] for k, v in batch.items()}
    part["audio"] = part["audio"][:, : int(part["audio_lens"].max())]  # own padding per rank
    return part


def worker(rank: int, init_file: str, out_dir: str) -> None:
    ddp_step_and_save(rank, init_file, out_dir, make_model(), rank_slice(global_batch(), rank))


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_ddp_equals_single_process(tmp_path):
    spawn_and_compare(worker, tmp_path, *single_process_step(make_model(), global_batch()))


def cached_worker(rank: int, init_file: str, out_dir: str) -> None:
    model = make_model()
    model.grad_cache_chunk = 2  # rank 1 holds 5 clips: chunks of 2, 2, 1
    ddp_step_and_save(rank, init_file, out_dir, model, rank_slice(global_batch(), rank))


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_ddp_with_gradient_caching_equals_single_process(tmp_path):
    """Gradient caching inside DDP (chunked, checkpointed towers; negatives still gathered from
    both ranks) gives the single-process, unchunked loss and gradients."""
    reference = single_process_step(make_model(), global_batch())  # unchunked
    spawn_and_compare(cached_worker, tmp_path, *reference)
