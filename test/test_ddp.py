"""2-process DDP (gloo): loss and gradients equal one process on the same global batch, also
when the ranks hold different batch sizes."""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

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


def worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    torch.set_num_threads(1)
    model = torch.nn.parallel.DistributedDataParallel(make_model())
    out = model(rank_slice(global_batch(), rank))
    out["loss"].backward()
    loss = out["loss"].detach().clone()
    dist.all_reduce(loss)
    grads = {n: p.grad.clone() for n, p in model.module.named_parameters() if p.grad is not None}
    torch.save({"loss": loss / world, "grads": grads}, os.path.join(out_dir, f"rank{rank}.pt"))
    dist.destroy_process_group()


@pytest.mark.timeout(300)
def test_ddp_equals_single_process(tmp_path):
    model = make_model()
    out = model(global_batch())
    out["loss"].backward()
    ref = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    mp.spawn(worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    for rank in range(2):
        res = torch.load(tmp_path / f"rank{rank}.pt")
        assert abs(float(res["loss"]) - float(out["loss"])) < 1e-5
        assert set(res["grads"]) == set(ref)
        for name, g in ref.items():
            torch.testing.assert_close(res["grads"][name], g, rtol=1e-4, atol=1e-6, msg=name)
