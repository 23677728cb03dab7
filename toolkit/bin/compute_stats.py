"""Stage 2: global mean/std of the frontend's features over (a sample of) the training cuts.

``python -m toolkit.bin.compute_stats -c conf.yaml --cuts data/cuts_train.jsonl.gz --out data/fbank_stats.pt``
The frontend reads the file through its ``stats_file`` key (global CMVN).
"""

from __future__ import annotations

import argparse
import logging
import random
from pathlib import Path

import torch
from lhotse import CutSet
from tqdm import tqdm

from toolkit.bin.common import add_config_args, config_from_args, run_cli
from toolkit.data.dataset import CaptionDataset
from toolkit.data.sampling import make_loader, make_sampler
from toolkit.registry import FRONTENDS
from toolkit.schema import data_config
from toolkit.train.checkpoint import save_atomic
from toolkit.utils.logging import setup_logging

log = logging.getLogger("toolkit.stats")


@torch.no_grad()
def feature_stats(frontend: torch.nn.Module, loader) -> dict[str, torch.Tensor]:
    """Mean/std ``(F,)`` over every valid frame the loader yields (float64 accumulation)."""
    total, sq, n = None, None, 0
    for batch in tqdm(loader, desc="stats", unit="batch", mininterval=10):
        if not batch["cut_ids"]:
            continue
        feats, lens = frontend(batch["audio"], batch["audio_lens"])
        mask = torch.arange(feats.shape[1])[None] < lens[:, None]
        f = feats[mask].double()
        total = f.sum(0) if total is None else total + f.sum(0)
        sq = (f**2).sum(0) if sq is None else sq + (f**2).sum(0)
        n += f.shape[0]
    if not n:
        raise RuntimeError("no frames: every clip failed to load")
    mean = total / n
    std = (sq / n - mean**2).clamp(min=0).sqrt()
    return {"mean": mean.float(), "std": std.float(), "frames": torch.tensor(n)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_config_args(p)
    p.add_argument("--cuts", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--max-cuts", type=int, default=1000, help="random sample size")
    args = p.parse_args(argv)
    setup_logging()
    cfg = config_from_args(args)
    fcfg = dict(cfg["frontend"])
    fcfg.pop("stats_file", None)  # stats are computed on raw features
    frontend = FRONTENDS.build(fcfg, key="frontend").eval()
    dcfg = data_config(cfg)
    cuts = CutSet.from_file(args.cuts).to_eager()
    if len(cuts) > args.max_cuts:
        cuts = cuts.shuffle(rng=random.Random(0)).subset(first=args.max_cuts)
    sampler = make_sampler(cuts, max_duration=dcfg.max_duration, shuffle=False, bucketing=False)
    sampler.set_epoch(0)
    ds = CaptionDataset(None, dcfg.sampling_rate, dcfg.max_clip_duration, "first", train=False)
    stats = feature_stats(frontend, make_loader(ds, sampler, dcfg.num_workers))
    save_atomic(stats, Path(args.out))
    log.info("feature stats over %d frames written to %s", int(stats["frames"]), args.out)
    return 0


def cli() -> None:
    run_cli(main)


if __name__ == "__main__":
    cli()
