"""The experiment config: its top-level sections and the typed non-plugin sections.

Plugin sections (``frontend``, ``augmentation``, ``encoder``, ``tokenizer``, ``objective``,
``optim``, ``scheduler``) are ``{name: <registered name>, **kwargs}`` blocks checked against the
plugin's signature. ``data``, ``train`` and ``eval`` are checked against the dataclasses below.
Every key is documented in docs/config.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from toolkit.config import ConfigError, build_section, locate

PLUGIN_SECTIONS = (
    "frontend",
    "augmentation",
    "encoder",
    "tokenizer",
    "objective",
    "optim",
    "scheduler",
)
TOP_LEVEL = (*PLUGIN_SECTIONS, "data", "train", "eval", "seed", "plugins", "exp_dir", "tags")


@dataclass
class DataConfig:
    """Where the cuts are and how they are batched."""

    # Each split: a cut manifest, a Shar directory, or [{path, weight, subset}, ...]
    # (toolkit.data.sources; docs/training.md "Training data").
    train: str | dict | list | None = None  # training cuts
    dev: str | dict | list | None = None  # dev cuts (probe model selection, validation loss)
    test: str | dict | list | None = None  # test cuts (evaluation)
    sampling_rate: int = 16000  # Hz; audio at other rates is resampled on the fly
    max_duration: float = 200.0  # seconds of audio per batch and rank
    num_buckets: int = 10  # duration buckets of the DynamicBucketingSampler
    bucketing: bool = True  # False → plain shuffled batches
    max_clip_duration: float | None = 10.0  # longer training clips are randomly cropped (s)
    min_clip_duration: float = 0.2  # shorter clips are dropped (counted) before training (s)
    num_workers: int = 2  # dataloader worker processes
    drop_last: bool = False
    # How each epoch's workers start: fork (torch's default), forkserver (from a small server
    # process, so the trainer's heap is not shared copy-on-write with them), or spawn.
    worker_start: Literal["fork", "forkserver", "spawn"] = "fork"


@dataclass
class TrainConfig:
    """The trainer loop."""

    max_steps: int = 1000  # optimiser steps
    max_epochs: int | None = None  # stop earlier after this many epochs
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 on CUDA, fp32 on CPU
    device: Literal["auto", "cpu", "cuda"] = "auto"
    grad_clip: float | None = 1.0  # max global grad norm (None: no clipping)
    accum_grad: int = 1  # micro-batches per optimiser step
    log_every: int = 10  # steps between TensorBoard/CSV scalars
    save_every: int = 200  # steps between checkpoints
    keep_last: int = 3  # checkpoints kept
    max_bad_steps: int = 5  # consecutive non-finite losses before aborting
    num_threads: int | None = None  # torch intra-op threads on CPU (None: torch default)
    progress: bool = True  # tqdm progress bar
    compile: bool = False  # torch.compile the encoder and the objective (in place; same keys)
    compile_backend: str = "inductor"  # torch.compile backend ("eager": trace only, for checks)
    log_cut_ids: bool = (
        False  # append every batch's cut ids to cut_ids.rank<r>.tsv (data-order audits)
    )
    ema_decay: float | None = None  # EMA of the weights after every step (e.g. 0.999); None: off

    def __post_init__(self) -> None:
        if self.ema_decay is not None and not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(
                f"{locate('train.ema_decay')}train.ema_decay={self.ema_decay}: must be in [0, 1) "
                "(e.g. 0.999), or null for no EMA"
            )


@dataclass
class EvalConfig:
    """Stage-5 evaluation: linear probes, retrieval, zero-shot, captioning (docs/evaluation.md)."""

    batch_duration: float = 200.0  # seconds of audio per extraction batch
    max_clip_duration: float | None = 30.0  # evaluation clips are cut to this length (from 0 s)
    evaluators: list[dict] = field(
        default_factory=lambda: [
            {"name": "linear_probe"},
            {"name": "retrieval"},
            {"name": "zero_shot"},
        ]
    )  # evaluator plugin blocks, run in order
    baselines: list[Literal["random_init", "logmel_stats"]] = field(
        default_factory=lambda: ["random_init", "logmel_stats"]
    )  # reference rows: the untrained encoder and raw log-mel mean+std statistics
    num_workers: int = 2  # dataloader workers for extraction
    check_leakage: bool = True  # error if a dev/test clip is in the pretraining manifest
    name: str | None = None  # task-set name appended to every row's group ("linear probe [esc50]")
    folds: list[str] = field(default_factory=list)  # k-fold CV manifests instead of data.dev/test
    layer: int | Literal["average"] | None = None  # encoder layer probed: None = final output,
    # an index into the encoder's forward_layers() list (negative from the end), "average" = mean


def check_top_level(cfg: dict[str, Any]) -> None:
    """Unknown top-level sections are errors (a typo would otherwise be silently ignored);
    plugin sections are checked against their plugins (:func:`check_plugins`)."""
    for k in cfg:
        if k not in TOP_LEVEL:
            raise ConfigError(
                f"{locate(k)}{k}: unknown config section; known: {', '.join(TOP_LEVEL)}"
            )
    check_plugins(cfg)


# Constructor arguments that code (not YAML) supplies to each plugin kind.
CONTEXT_ARGS = {
    "encoder": {"input_dim"},
    "objective": {"encoder_dim", "vocab_size", "special_ids"},
    "optim": {"model"},
    "scheduler": {"optimizer", "total_steps"},
}
SECTION_REGISTRY = {"optim": "optimizer"}


def check_plugins(cfg: dict[str, Any]) -> None:
    """Check every plugin section's name, keys and types before anything is built, so a typo
    fails in a second rather than after data loading."""
    from toolkit.registry import ALL_REGISTRIES

    for sec in PLUGIN_SECTIONS:
        block = cfg.get(sec)
        if not block:
            continue
        if not isinstance(block, dict):
            raise ConfigError(f"{locate(sec)}{sec}: expected a mapping {{name: ..., ...}}")
        if sec == "encoder":  # init_from / init_key_map / init_strict: see docs/init_from.md
            from toolkit.weights import split_init_keys

            block, _ = split_init_keys(block, sec)
        ALL_REGISTRIES[SECTION_REGISTRY.get(sec, sec)].check(block, sec, CONTEXT_ARGS.get(sec, ()))


def data_config(cfg: dict[str, Any]) -> DataConfig:
    return build_section(DataConfig, cfg.get("data"), "data")


def train_config(cfg: dict[str, Any]) -> TrainConfig:
    return build_section(TrainConfig, cfg.get("train"), "train")


def eval_config(cfg: dict[str, Any]) -> EvalConfig:
    return build_section(EvalConfig, cfg.get("eval"), "eval")
