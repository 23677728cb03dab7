"""The generic trainer loop. It sees a model returning a loss dict and batch dicts; it knows
nothing of audio (it only reads the optional ``duration``/``num_skipped`` batch entries).

Features: AdamW-style optimiser and LR-scheduler plugins, gradient accumulation and clipping,
bf16 autocast (``train.precision``: on CUDA by default; on request on CPUs with native bf16),
DDP (gloo/NCCL), atomic checkpoints every N steps with keep-last-K, bit-exact ``resume`` (model,
optimiser, scheduler, sampler position, every rank's RNG states; under another world size: the
same global data position, fresh RNG streams for new ranks), non-finite loss skipping with an
abort after N in a row, TensorBoard + CSV scalars, a progress bar, an optional EMA of the weights
(``train.ema_decay``, saved under ``"ema"``).
"""

from __future__ import annotations

import csv
import logging
import math
import sys
import time
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import nn

from toolkit import distributed as D
from toolkit.data.sampling import rescale_position
from toolkit.schema import TrainConfig
from toolkit.train.checkpoint import (
    list_checkpoints,
    load_latest,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from toolkit.train.ema import EMA
from toolkit.weights import CheckpointError

log = logging.getLogger(__name__)


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` does bf16 arithmetic in hardware: any CUDA device; a CPU whose oneDNN
    has bf16 kernels (AVX512-BF16 or AMX; elsewhere bf16 is emulated, slower than fp32)."""
    if device.type == "cuda":
        return True
    if device.type != "cpu" or not torch.backends.mkldnn.is_available():
        return False
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def uses_bf16(precision: str, device: torch.device) -> bool:
    """Whether training with ``train.precision`` on ``device`` runs under bf16 autocast: ``auto``
    on CUDA only (fp32 on CPU), ``bf16`` where :func:`native_bf16`, ``fp32`` never."""
    if precision == "auto":
        return device.type == "cuda"
    return precision == "bf16" and native_bf16(device)


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. the loss kept being NaN/inf)."""


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {
        k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v
        for k, v in batch.items()
    }


class Trainer:
    """Runs ``cfg.max_steps`` optimiser steps over ``loader`` epochs (:meth:`fit`), or one
    batch at a time for a caller's own loop (:meth:`train_step`; ``step`` is the step counter).

    Args:
        model: ``forward(batch) -> {"loss": scalar, ...}``; other scalar entries are logged.
        optimizer / scheduler: built by the OPTIMIZERS / SCHEDULERS plugins.
        loader: iterable of batch dicts; ``set_epoch(epoch, skip)`` is called on ``sampler``
            before every epoch (``skip`` = batches already consumed when resuming).
        sampler: object with ``set_epoch(epoch, skip)``; ``dataset`` may have ``set_epoch``.
        run_dir: checkpoints in ``run_dir/checkpoints``, TensorBoard in ``run_dir/tensorboard``,
            scalars also in ``run_dir/train_log.csv``.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: Any,
        loader: Iterable[dict[str, Any]],
        sampler: Any,
        cfg: TrainConfig,
        run_dir: Path,
        device: torch.device,
        dataset: Any = None,
        extra_state: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.model = model
        self.module = model.module if hasattr(model, "module") else model
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.loader = loader
        self.sampler = sampler
        self.dataset = dataset
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.device = device
        self.extra_state = extra_state
        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        self.bad_streak = 0
        self.skipped_data = 0
        self.is_main = D.rank() == 0
        use_bf16 = uses_bf16(cfg.precision, device)
        if cfg.precision == "bf16" and not use_bf16:
            log.warning(
                "train.precision=bf16: %s has no native bf16 arithmetic; training in fp32", device
            )
        self.autocast = (
            (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if use_bf16 else nullcontext
        )
        self.writer = None
        self.csv_path = self.run_dir / "train_log.csv"
        self.ema = EMA(self.module, cfg.ema_decay) if cfg.ema_decay is not None else None
        self._micro = 0  # train_step's micro-batches since the last optimiser step
        self._acc_metrics: dict[str, float] = {}  # and their scalars, averaged
        # hook(phase) as a phase of train_step ends: "forward", "backward", "update"
        self.phase_hooks: list[Callable[[str], None]] = []

    # ------------------------------------------------------------------ state
    def state_dict(
        self,
        rng_per_rank: list[dict[str, Any]] | None = None,
        data_per_rank: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Everything :meth:`resume` needs; ``rng_per_rank``: every rank's RNG states in rank
        order (:meth:`save` gathers them; default: this process's)."""
        return {
            "model": self.module.state_dict(),
            **({"ema": self.ema.state_dict()} if self.ema is not None else {}),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler else None,
            "trainer": {
                "step": self.step,
                "epoch": self.epoch,
                "batch_in_epoch": self.batch_in_epoch,
                "bad_streak": self.bad_streak,
                "skipped_data": self.skipped_data,
            },
            "rng_per_rank": rng_per_rank or [rng_state()],
            "data_per_rank": data_per_rank or [self._data_state()],
            "world_size": D.world_size(),
            **(self.extra_state() if self.extra_state else {}),
        }

    def resume(self) -> bool:
        """Load the newest readable checkpoint of ``run_dir``; False if there is none.

        Same world size: every rank continues its own RNG streams, so the run is bit-exact.
        Another world size (e.g. 8 GPUs → 4): model, optimiser and scheduler are restored, the
        sampler resumes at the same global batch position (:func:`rescale_position`), ranks that
        existed before keep their RNG streams and new ranks get fresh ones; a warning says so.
        The per-rank batch is unchanged, so the global batch scales with the world size.
        """
        ckpt_dir = self.run_dir / "checkpoints"
        state = load_latest(ckpt_dir)  # a corrupt newest one: a warning, then the one before
        if state is None:
            found = list_checkpoints(ckpt_dir)
            if found:  # never silently start over (and overwrite) a run whose files are damaged
                raise CheckpointError(
                    f"--resume: none of the {len(found)} checkpoint(s) in {ckpt_dir} can be read "
                    f"(newest: {found[-1][1].name}; see the warnings above); move them aside to "
                    "start from scratch"
                )
            return False
        self.module.load_state_dict(state["model"])
        if self.ema is not None and "ema" in state:
            self.ema.load_state_dict(state["ema"])
        elif self.ema is not None:  # a run that started without train.ema_decay
            log.warning("the checkpoint has no EMA weights; the EMA starts at the resumed model")
            self.ema.reset(self.module)
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler and state.get("scheduler"):
            self.scheduler.load_state_dict(state["scheduler"])
        for k, v in state["trainer"].items():
            setattr(self, k, v)
        rank, world = D.rank(), D.world_size()
        saved_world = int(state.get("world_size", world))  # older checkpoints: assume the same
        per_rank = state.get("rng_per_rank") or [state["rng"]]  # older checkpoints: rank 0's
        new_rank = "rng_per_rank" in state and rank >= len(per_rank)
        set_rng_state(per_rank[rank] if rank < len(per_rank) else per_rank[0])
        if new_rank:  # a rank the checkpoint did not have: its own stream, fixed by (step, rank)
            torch.manual_seed(torch.initial_seed() + 1000003 * rank + self.step)
        if hasattr(self.loader, "load_state_dict"):  # a streamed loader (toolkit.data.streaming)
            self._resume_stream(state, rank, saved_world)
        elif saved_world != world:
            old = self.batch_in_epoch
            self.batch_in_epoch = rescale_position(old, saved_world, world)
            log.warning(
                "resuming a %d-rank checkpoint on %d ranks: epoch %d continues after global batch "
                "%d (%d per rank before, %d now)%s; the global batch is now %d× the per-rank "
                "batch (learning rate unchanged)",
                saved_world,
                world,
                self.epoch,
                self.batch_in_epoch * world,
                old,
                self.batch_in_epoch,
                "; new ranks start fresh RNG streams" if world > saved_world else "",
                world,
            )
        self._truncate_csv(self.step)
        self._truncate_cut_ids(self.step)
        log.info(
            "resumed from step %d (epoch %d, batch %d)", self.step, self.epoch, self.batch_in_epoch
        )
        return True

    def _data_state(self) -> dict[str, Any] | None:
        return self.loader.state_dict() if hasattr(self.loader, "state_dict") else None

    def _resume_stream(self, state: dict[str, Any], rank: int, saved_world: int) -> None:
        """Give the streamed loader this rank's position back. Under another world size or
        number of data workers the slots read other shards, so the interrupted epoch cannot
        continue exactly: training goes on at the start of the next epoch (a warning says how
        much of the epoch is skipped)."""
        per_rank = state.get("data_per_rank") or []
        mine = per_rank[rank] if rank < len(per_rank) and saved_world == D.world_size() else None
        if self.batch_in_epoch == 0:
            return
        if mine is not None and self.loader.load_state_dict(mine):
            return
        log.warning(
            "the checkpoint's data position (epoch %d, %d batches in) was saved with another "
            "world size or data.num_workers (%s); the rest of epoch %d is skipped and training "
            "continues at the start of epoch %d",
            self.epoch,
            self.batch_in_epoch,
            f"world size {saved_world}, now {D.world_size()}"
            if saved_world != D.world_size()
            else "data.num_workers changed",
            self.epoch,
            self.epoch + 1,
        )
        self.epoch += 1
        self.batch_in_epoch = 0

    def ema_state_dict(self) -> dict[str, Any] | None:
        """The EMA weights (``train.ema_decay``) under the model's keys; None without EMA."""
        return self.ema.model_state_dict() if self.ema is not None else None

    def save(self) -> None:
        """Checkpoint (rank 0 writes). Collective under DDP: every rank's RNG state is gathered
        into ``rng_per_rank`` beside the world size."""
        rngs = D.all_gather_objects(rng_state())
        datas = D.all_gather_objects(self._data_state())
        if self.is_main:
            path = save_checkpoint(
                self.run_dir / "checkpoints",
                self.step,
                self.state_dict(rngs, datas),
                self.cfg.keep_last,
            )
            log.info("saved %s", path)

    # ------------------------------------------------------------------ logging
    def _truncate_csv(self, step: int) -> None:
        if not self.is_main or not self.csv_path.exists():
            return
        with open(self.csv_path) as f:
            rows = [r for r in csv.reader(f)]
        keep = [r for r in rows[1:] if r and int(r[0]) <= step]
        with open(self.csv_path, "w", newline="") as f:
            csv.writer(f).writerows([rows[0], *keep])

    def _log(self, scalars: dict[str, float]) -> None:
        if not self.is_main:
            return
        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=self.step)
        new = not self.csv_path.exists()
        with open(self.csv_path, "a", newline="") as f:
            w = csv.writer(f)
            if new:
                w.writerow(["step", "name", "value"])
            for k, v in scalars.items():
                self.writer.add_scalar(k, v, self.step)
                w.writerow([self.step, k, f"{v:.6g}"])

    # ------------------------------------------------------------------ loop
    def _all_finite(self, loss: torch.Tensor) -> bool:
        ok = torch.tensor(float(torch.isfinite(loss.detach()).all()), device=self.device)
        if D.is_distributed():
            torch.distributed.all_reduce(ok, op=torch.distributed.ReduceOp.MIN)
        return bool(ok.item())

    def _batches(self):
        """Endless (epoch, batch) stream starting at the resumed position.

        Under DDP the ranks agree before every batch whether any rank still has one (one
        all-reduce of a flag): an epoch ends on all ranks together, and a rank whose data ran
        out first (or whose batch lost all its clips) runs its last batch again as *padding*
        (``batch["padding"] = True``: loss × 0, not counted) so that no collective waits for
        it. Every cut is still seen once per epoch across the ranks.
        """
        distributed = D.is_distributed()
        last = None
        while True:
            if self.cfg.max_epochs is not None and self.epoch >= self.cfg.max_epochs:
                return
            start = self.batch_in_epoch
            self.sampler.set_epoch(self.epoch, skip=start)
            if self.dataset is not None and hasattr(self.dataset, "set_epoch"):
                self.dataset.set_epoch(self.epoch)
            it = iter(self.loader)
            while True:
                batch = next(it, None)
                if batch is not None:
                    self.batch_in_epoch += 1
                    self.skipped_data += int(batch.get("num_skipped", 0))
                usable = batch is not None and bool(batch.get("cut_ids", [None]))
                if distributed:
                    if not D.any_rank(batch is not None, self.device):
                        break
                    if not usable:
                        if last is None and hasattr(self.loader, "last_batch"):
                            last = self.loader.last_batch()  # resumed after this rank ran out
                        if last is None:
                            raise TrainingError(
                                f"rank {D.rank()} has no usable batch in epoch {self.epoch} "
                                "while other ranks do: the training set has fewer usable clips "
                                "than ranks x data workers can share"
                            )
                        yield {**last, "padding": True}
                        continue
                elif batch is None:
                    break
                elif not usable:
                    log.warning("empty batch (all its clips were skipped); moving on")
                    continue
                last = batch
                yield batch
            if start == 0 and self.batch_in_epoch == 0:
                raise TrainingError(
                    f"epoch {self.epoch} produced no batch: the training data is empty"
                )
            self.epoch += 1
            self.batch_in_epoch = 0

    def train_step(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Train on one host batch exactly as :meth:`fit` does; fit is a loop over this call.

        The batch's cut ids are logged (``train.log_cut_ids``), it is copied to the device, the
        model runs under the trainer's autocast, and a finite loss is back-propagated divided by
        ``train.accum_grad`` (DDP: gradients are all-reduced on the last micro-batch only). The
        ``accum_grad``-th call in a row then clips the gradients (``train.grad_clip``), steps the
        optimiser, updates the EMA (``train.ema_decay``), zeroes the gradients, steps the
        scheduler and advances :attr:`step` (the step counter; hence this method's name). A
        non-finite loss drops the batch and a non-finite gradient norm drops the update, each
        with a warning; ``train.max_bad_steps`` of them in a row raise :class:`TrainingError`.
        A batch with ``"padding": True`` (DDP, :meth:`fit`'s uneven epoch ends) counts with
        loss × 0. The caller puts the model in training mode (:meth:`fit` does). Collective
        under DDP: every rank calls it for every batch. Callables in :attr:`phase_hooks` are
        called with ``"forward"``, ``"backward"`` and ``"update"`` as each phase ends.

        Returns a dict: ``updated`` (bool: an optimiser step was taken); ``skipped`` (None,
        ``"loss"``: the batch was dropped, or ``"grad"``: the update was dropped); ``metrics``
        (after an update: the model's scalar outputs, ``"loss"`` and the others, as floats
        averaged over the step's micro-batches on this rank, as :meth:`fit` logs them before
        averaging over ranks; else ``{}``); ``grad_norm`` (float, before clipping; None
        while accumulating or after a dropped batch); ``lr`` (the first parameter group's
        learning rate after the scheduler step; None without an update); ``duration`` (this
        batch's ``"duration"``, 0.0 for padding or a dropped batch).
        """
        cfg = self.cfg
        padding = bool(batch.get("padding"))
        if not padding:
            self._log_cut_ids(batch)
        batch = to_device(batch, self.device)
        result: dict[str, Any] = {
            "updated": False,
            "skipped": None,
            "metrics": {},
            "grad_norm": None,
            "lr": None,
            "duration": 0.0,
        }
        last_micro = self._micro + 1 == cfg.accum_grad
        sync = (
            nullcontext()
            if last_micro or not hasattr(self.model, "no_sync")
            else self.model.no_sync()
        )
        with sync:
            with self.autocast():
                out = self.model(batch)
            self._phase_end("forward")
            loss = out["loss"] * 0.0 if padding else out["loss"]
            if not self._all_finite(loss):
                self.bad_streak += 1
                ids = _ids_text(batch.get("cut_ids"))
                log.warning(
                    "non-finite loss (%s) at step %d, batch %d of epoch %d (cuts %s); "
                    "skipping it (%d in a row)",
                    loss.item(),
                    self.step,
                    self.batch_in_epoch,
                    self.epoch,
                    ids,
                    self.bad_streak,
                )
                if self.bad_streak >= cfg.max_bad_steps:
                    raise TrainingError(
                        f"loss was NaN/inf for {self.bad_streak} batches in a row (last at "
                        f"step {self.step}, epoch {self.epoch}, cuts {ids}); lower optim.lr, "
                        f"check the data, or raise train.max_bad_steps. Last good "
                        f"checkpoint: {self.run_dir / 'checkpoints'}"
                    )
                return {**result, "skipped": "loss"}
            (loss / cfg.accum_grad).backward()
        self._phase_end("backward")
        self._micro += 1
        acc = self._acc_metrics
        for k, v in out.items():  # padding adds 0 to the same keys: the ranks all-reduce
            if isinstance(v, torch.Tensor) and v.numel() == 1:  # one value per key in fit
                x = 0.0 if padding else float(v.detach())
                acc[k] = acc.get(k, 0.0) + x / cfg.accum_grad
        if not padding:
            result["duration"] = float(batch.get("duration", 0.0))
        if self._micro < cfg.accum_grad:
            return result
        self._micro, self._acc_metrics = 0, {}
        grad_norm = self._clip()
        result["grad_norm"] = grad_norm
        if not math.isfinite(grad_norm):
            self.bad_streak += 1
            log.warning("non-finite gradient norm at step %d; skipping the update", self.step)
            self.optimizer.zero_grad(set_to_none=True)
            self._phase_end("update")
            if self.bad_streak >= cfg.max_bad_steps:
                raise TrainingError(
                    f"gradients were NaN/inf for {self.bad_streak} steps in a row (step "
                    f"{self.step}, last batch's cuts {_ids_text(batch.get('cut_ids'))}); "
                    "lower optim.lr or check the data"
                )
            return {**result, "skipped": "grad"}
        self.optimizer.step()
        if self.ema is not None:
            self.ema.update(self.module)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scheduler is not None:
            self.scheduler.step()
        self.step += 1
        self.bad_streak = 0
        self._phase_end("update")
        lr = self.optimizer.param_groups[0]["lr"]
        return {**result, "updated": True, "metrics": acc, "lr": lr}

    def _phase_end(self, phase: str) -> None:
        for hook in self.phase_hooks:
            hook(phase)

    def fit(self) -> None:
        """Train until ``max_steps`` (or ``max_epochs``); checkpoints at the end. Every batch
        goes through :meth:`train_step`; around it this loop draws the batches from the resumed
        data position, and adds the progress bar, the scalars every ``log_every`` steps and a
        checkpoint every ``save_every``."""
        cfg = self.cfg
        self.model.train()
        bar = None
        if self.is_main and cfg.progress:
            from tqdm import tqdm

            bar = tqdm(
                total=cfg.max_steps,
                initial=self.step,
                desc="train",
                unit="step",
                dynamic_ncols=True,
                mininterval=1.0 if sys.stderr.isatty() else 30.0,
            )
        self._micro, self._acc_metrics = 0, {}
        acc_dur, t0 = 0.0, time.perf_counter()
        last_saved = self.step
        batches = self._batches()
        while self.step < cfg.max_steps:
            batch = next(batches, None)
            if batch is None:
                break
            res = self.train_step(batch)
            if res["skipped"] == "grad":
                acc_dur = 0.0  # the throughput restarts at a dropped update
                continue
            acc_dur += res["duration"]
            if not res["updated"]:
                continue
            metrics = res["metrics"]
            if bar is not None:
                bar.update(1)
                bar.set_postfix(
                    loss=f"{metrics.get('loss', float('nan')):.3f}",
                    epoch=self.epoch,
                    refresh=False,
                )
            if self.step % cfg.log_every == 0 or self.step == cfg.max_steps:
                dt = time.perf_counter() - t0
                total_dur = float(D.all_reduce_mean(torch.tensor(acc_dur))) * D.world_size()
                scalars = {
                    f"train/{k}": float(D.all_reduce_mean(torch.tensor(v)))
                    for k, v in metrics.items()
                }
                scalars["train/lr"] = res["lr"]
                scalars["train/grad_norm"] = res["grad_norm"]
                scalars["throughput/data_seconds_per_second"] = total_dur / max(dt, 1e-9)
                scalars["data/skipped_total"] = float(self.skipped_data)
                self._log(scalars)
                t0 = time.perf_counter()
                acc_dur = 0.0
            if self.step % cfg.save_every == 0:
                self.save()
                last_saved = self.step
        if bar is not None:
            bar.close()
        if self.step != last_saved:
            self.save()
        if self.skipped_data:
            log.warning(
                "%d clips were skipped by the data loader (see warnings above)", self.skipped_data
            )
        if self.writer is not None:
            self.writer.close()

    def _log_cut_ids(self, batch: dict[str, Any]) -> None:
        """With ``train.log_cut_ids``: append ``step<TAB>epoch<TAB>id,id,...`` to
        ``cut_ids.rank<r>.tsv`` (the exact data order; :meth:`resume` drops lines of steps that
        are trained again)."""
        if not self.cfg.log_cut_ids:
            return
        with open(self._cut_id_path(), "a") as f:
            f.write(f"{self.step}\t{self.epoch}\t{','.join(batch['cut_ids'])}\n")

    def _cut_id_path(self) -> Path:
        return self.run_dir / f"cut_ids.rank{D.rank()}.tsv"

    def _truncate_cut_ids(self, step: int) -> None:
        path = self._cut_id_path()
        if not self.cfg.log_cut_ids or not path.exists():
            return
        keep = [ln for ln in path.read_text().splitlines(True) if int(ln.split("\t")[0]) < step]
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(keep))
        tmp.replace(path)

    def _clip(self) -> float:
        params = [p for p in self.module.parameters() if p.grad is not None]
        max_norm = self.cfg.grad_clip if self.cfg.grad_clip else float("inf")
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        return float(norm)


def _ids_text(ids: Any, limit: int = 20) -> str:
    """A batch's cut ids for a message: ``a,b,c`` (the first ``limit``, then how many more)."""
    ids = [str(i) for i in ids or []]
    more = f",... ({len(ids) - limit} more)" if len(ids) > limit else ""
    return ",".join(ids[:limit]) + more if ids else "?"
