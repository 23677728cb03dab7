"""Pretrain a model: ``python -m toolkit.bin.train -c conf.yaml --exp-dir exp/x [k=v ...]``.

Works under ``torchrun --nproc-per-node N`` (DDP). Writes ``config.yaml`` (resolved),
``checkpoints/``, ``tensorboard/``, ``train_log.csv``, ``train.log`` and ``model.pt`` into the
experiment directory. ``--resume`` continues from the newest checkpoint bit-exactly.
``--init-model MODEL`` continues pretraining from a trained, exported or released model: its
frontend/encoder/objective/tokenizer sections and weights replace the config's
(:func:`toolkit.runs.continue_from`; docs/released_checkpoints.md).
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
from pathlib import Path

import torch

from toolkit import distributed as D
from toolkit.bin.common import add_config_args, config_from_args, run_cli
from toolkit.config import ConfigError, apply_overrides, dump_config, load_config
from toolkit.data.dataset import CaptionDataset
from toolkit.data.streaming import train_loader
from toolkit.layers import resolve_device
from toolkit.model import build_model, build_tokenizer
from toolkit.registry import import_plugins
from toolkit.runs import continue_from, keep_files_with_run, load_into, open_run
from toolkit.schema import check_top_level, data_config, train_config
from toolkit.train.checkpoint import list_checkpoints, save_atomic
from toolkit.train.optim import build_optimization
from toolkit.train.trainer import Trainer
from toolkit.utils.logging import setup_logging

log = logging.getLogger("toolkit.train")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_config_args(p)
    p.add_argument("--exp-dir", required=True, help="experiment directory")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint")
    p.add_argument(
        "--init-model",
        metavar="MODEL",
        help="continue pretraining from a trained, exported or released model: its frontend, "
        "encoder, objective and tokenizer (with its weights) replace the config's",
    )
    args = p.parse_args(argv)
    init_run = open_run(args.init_model) if args.init_model else None
    if init_run is not None:  # the model's sections, then the command line's overrides
        cfg = continue_from(init_run, load_config(args.config))
        apply_overrides(cfg, args.overrides, {})
        import_plugins(cfg.get("plugins"))
        check_top_level(cfg)
    else:
        cfg = config_from_args(args)
    exp = Path(args.exp_dir)
    dcfg, tcfg = data_config(cfg), train_config(cfg)
    seed = int(cfg.get("seed", 0))

    device = resolve_device(tcfg.device)
    if device.type == "cuda" and "LOCAL_RANK" in os.environ:
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    D.init_from_env(device)
    setup_logging(exp / "train.log", D.rank())
    if tcfg.num_threads:
        torch.set_num_threads(tcfg.num_threads)
    if list_checkpoints(exp / "checkpoints") and not args.resume:
        raise ConfigError(
            f"--exp-dir: {exp} already holds checkpoints; pass --resume to continue or use a new dir"
        )
    if D.rank() == 0:
        cfg.setdefault("seed", seed)
        keep_files_with_run(cfg, exp)  # stats + tokenizer into the run, run.json
        dump_config(cfg, exp / "config.yaml")
        log.info("resolved config written to %s", exp / "config.yaml")

    torch.manual_seed(seed)
    tokenizer = build_tokenizer(cfg)
    model = build_model(cfg, tokenizer, init_weights=init_run is None)
    if init_run is not None:
        log.info("continuing from %s (%s)", init_run.dir, init_run.weights_path())
        load_into(init_run, model)
    report = init_run.report if init_run is not None else getattr(model, "init_report", None)
    if report is not None and D.rank() == 0:  # the load report next to the run
        (exp / "load_report.txt").write_text(report.table() + "\n")
    model = model.to(device)
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    n_enc = sum(p.numel() for p in model.encoder.parameters())
    log.info("model: %.2fM trainable parameters (encoder %.2fM)", n_params / 1e6, n_enc / 1e6)
    optimizer, scheduler = build_optimization(cfg, model, tcfg.max_steps)
    if tcfg.compile:  # in place: parameter names and checkpoints stay those of the eager model
        model.encoder.compile(backend=tcfg.compile_backend)
        model.objective.compile(backend=tcfg.compile_backend)
        if model.grad_cache_chunk:  # chunks call the towers directly, not objective.forward
            for child in model.objective.children():
                child.compile(backend=tcfg.compile_backend)
        log.info("torch.compile (%s): encoder and objective", tcfg.compile_backend)
    ddp_model: torch.nn.Module = model
    if D.is_distributed():
        ddp_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    torch.manual_seed(seed + 1000 * D.rank())  # per-rank dropout/augmentation stream

    dataset = CaptionDataset(
        tokenizer,
        sampling_rate=dcfg.sampling_rate,
        max_clip_duration=dcfg.max_clip_duration,
        seed=seed,
    )
    loader = train_loader(
        dcfg.train,
        dataset,
        dcfg.max_duration,
        rank=D.rank(),
        world_size=D.world_size(),
        num_workers=dcfg.num_workers,
        seed=seed,
        bucketing=dcfg.bucketing,
        num_buckets=dcfg.num_buckets,
        drop_last=dcfg.drop_last,
        min_duration=dcfg.min_clip_duration,
        worker_start=dcfg.worker_start,
    )
    trainer = Trainer(ddp_model, optimizer, scheduler, loader, loader, tcfg, exp, device)
    if args.resume and not trainer.resume():
        log.info("--resume: no checkpoint in %s, starting from scratch", exp / "checkpoints")
    trainer.fit()
    if D.rank() == 0:
        final = {"model": model.state_dict(), "config": cfg, "step": trainer.step}
        ema = trainer.ema_state_dict()
        if ema is not None:  # evaluation prefers it (toolkit.train.checkpoint.model_weights)
            final["ema"] = ema
        save_atomic(final, exp / "model.pt")
        log.info("done: %d steps; final model %s", trainer.step, exp / "model.pt")
    if D.is_distributed():
        # Free DDP while the process group is still registered: if DDP's reducer dropped the
        # last reference to the group, the group's destructor would run with the GIL held and
        # can deadlock with a gloo thread releasing the tensors of a finished all-gather (a
        # hang at exit, seen with 2 CPU ranks). destroy_process_group releases the GIL.
        del trainer, ddp_model
        gc.collect()
        torch.distributed.destroy_process_group()
    return 0


def cli() -> None:
    run_cli(main)


if __name__ == "__main__":
    cli()
