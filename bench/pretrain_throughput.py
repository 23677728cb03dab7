"""Benchmark: pretraining throughput (audio-seconds/s), MFU and peak memory of the REAL training
step (waveforms → fbank on the device → encoder → objective with its text tower / decoder →
backward → gradient clipping → optimizer + scheduler step): ``Trainer.train_step`` of
``toolkit/train/trainer.py``, the body of its ``fit`` loop, for several batch sizes and
precision/compilation modes.

Synthetic sweep (default; random 10 s waveforms + random token ids of caption length)::

    python bench/pretrain_throughput.py --batch-sizes 64,128,256 \\
        --modes eager-fp32,eager-bf16,compiled-bf16 --json out.json

Real data path (Lhotse sampler + ``CaptionDataset`` + DataLoader workers), also reporting the GPU
idle share (time the step waits for the next batch / total)::

    python bench/pretrain_throughput.py --make-synthetic-shar /tmp/shar --clips 2000
    python bench/pretrain_throughput.py --data shar:/tmp/shar --batch-sizes 128 --modes eager-bf16

CPU smoke test (tiny encoder, batch 2, 1.5 s clips, 2 steps): ``--device cpu --tiny``.

The model comes from a config (default: ``egs/captionstew/conf/paper/contrastive.yaml`` or
``captioning.yaml`` with ``--objective captioning``); trailing ``key=value`` arguments override it
as on the train CLI. Files the config names but the benchmark does not need are replaced: a
missing ``frontend.stats_file`` is dropped (normalisation by mean 0 / std 1 costs the same), a
missing Hugging Face text tower becomes a randomly initialised model of the same shape (BERT-base
for the paper config), and a missing tokenizer becomes :class:`HashTokenizer` (same vocabulary
size and special ids). MFU = model FLOPs per step (``FlopCounterMode`` over one forward +
backward: matmuls, convolutions, attention) / step time / the matmul ceiling of the row's
precision measured in the same process (bf16 on CUDA; fp32, and bf16 where native, on a CPU).
See bench/README.md.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import signal
import statistics
import sys
import tempfile
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script from anywhere: import the checkout's toolkit
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402

MODES = ("eager-fp32", "eager-bf16", "compiled-bf16")
PAPER_CONF = {
    "contrastive": REPO / "egs/captionstew/conf/paper/contrastive.yaml",
    "captioning": REPO / "egs/captionstew/conf/paper/captioning.yaml",
}
LHOTSE_HINT = (
    "lhotse is not installed in this Python, and the toolkit needs it (the fbank frontend is "
    "lhotse's Wav2LogFilterBank; sampling and data loading are Lhotse's). On the device machine "
    "carry the wheels (lhotse, cytoolz, intervaltree, soundfile, cffi, pycparser, audioread) and "
    "install them first: see bench/README.md, 'Pretraining throughput'."
)
# A tiny network with the real topology (test/test_zipformer.py's TINY).
TINY_ENCODER = {
    "name": "zipformer",
    "size": "S",
    "num_encoder_layers": 1,
    "encoder_dim": [32, 48, 32, 48, 32, 24],
    "encoder_unmasked_dim": 16,
    "feedforward_dim": 64,
    "num_heads": 2,
    "query_head_dim": 8,
    "value_head_dim": 4,
    "pos_head_dim": 2,
    "pos_dim": 8,
    "cnn_module_kernel": [7, 7, 5, 5, 5, 7],
    "subsampling_channels": [4, 8, 16],
}
TINY_BERT = {
    "vocab_size": 1000,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 64,
}
BERT_BASE_AS_TRANSFORMER = {
    "name": "transformer",
    "dim": 768,
    "num_layers": 12,
    "num_heads": 12,
    "ff_dim": 3072,
    "max_len": 512,
}
WORDS = (
    "a dog barks while a car passes by on the wet road and people talk in the background "
    "music plays softly with piano guitar drums and a woman sings loudly then a man speaks "
    "birds chirp wind blows rain falls water flows an engine idles a door slams footsteps "
    "approach children laugh crowd cheers bell rings siren wails clock ticks typing on keyboard"
).split()


# ----------------------------------------------------------------------------- small helpers
def has_module(name: str) -> bool:
    """True when ``name`` imports."""
    try:
        __import__(name)
    except ImportError:
        return False
    return True


def require_lhotse() -> None:
    """Exit with a clear message (code 2) when lhotse is missing."""
    if not has_module("lhotse"):
        print(f"ERROR: {LHOTSE_HINT}", file=sys.stderr)
        raise SystemExit(2)


def parse_ints(text: str) -> list[int]:
    """``"64,128"`` → ``[64, 128]``."""
    return [int(x) for x in text.split(",") if x.strip()]


def parse_range(text: str) -> tuple[int, int]:
    """``"12:32"`` → ``(12, 32)`` (inclusive token-count range of a caption)."""
    lo, _, hi = text.partition(":")
    a, b = int(lo), int(hi or lo)
    if not 2 <= a <= b:
        raise argparse.ArgumentTypeError(f"caption length range {text!r}: need 2 <= min <= max")
    return a, b


def is_oom(e: BaseException) -> bool:
    """True for a device out-of-memory error (also when wrapped by the compiler)."""
    seen: BaseException | None = e
    while seen is not None:
        if isinstance(seen, torch.OutOfMemoryError) or "out of memory" in str(seen).lower():
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def log(msg: str) -> None:
    """Progress line on stderr (the tables go to stdout)."""
    print(f"# [{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_memory(device: torch.device, compiled: bool = False) -> None:
    if compiled:
        import torch._dynamo

        torch._dynamo.reset()  # compiled code holds the old model's tensors
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Marks:
    """Timestamps inside a step: CUDA events on a GPU (no extra synchronisation), the host clock
    on a CPU. ``ms(a, b)`` is valid after the step has been synchronised."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"

    def mark(self) -> Any:
        if self.cuda:
            ev = torch.cuda.Event(enable_timing=True)
            ev.record()
            return ev
        return time.perf_counter()

    def ms(self, a: Any, b: Any) -> float:
        return float(a.elapsed_time(b)) if self.cuda else (b - a) * 1000.0


# ----------------------------------------------------------------------------- tokenizers
class HashTokenizer:
    """Stand-in tokenizer with the interface of the project's tokenizers (``encode``,
    ``encode_batch -> (ids (B, L), lens (B,))``, ``decode``, ``vocab_size``, ``pad_id`` /
    ``bos_id`` / ``eos_id``): every lower-cased word maps to one id in ``[first_id, vocab_size)``
    by CRC32; ``bos``/``eos`` wrap each caption, truncated to ``max_len``. Used when the
    config's tokenizer files are missing; token counts match a word-level tokenizer."""

    def __init__(
        self, vocab_size: int, pad_id: int, bos_id: int, eos_id: int, first_id: int, max_len: int
    ) -> None:
        if not 0 <= first_id < vocab_size:
            raise ValueError(f"first_id {first_id} outside the vocabulary ({vocab_size})")
        self.vocab_size, self.pad_id, self.bos_id, self.eos_id = vocab_size, pad_id, bos_id, eos_id
        self.first_id, self.max_len = first_id, max_len

    def encode(self, text: str) -> list[int]:
        span = self.vocab_size - self.first_id
        ids = [self.first_id + zlib.crc32(w.encode()) % span for w in text.lower().split()]
        return [self.bos_id, *ids[: self.max_len - 2], self.eos_id]

    def encode_batch(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        from toolkit.text.tokenizer import pad_ids

        return pad_ids([self.encode(t) for t in texts], self.pad_id)

    def decode(self, ids: Sequence[int]) -> str:
        return " ".join(f"w{int(i)}" for i in ids if int(i) >= self.first_id)


# ----------------------------------------------------------------------------- config
def _tiny_overrides(objective: str) -> dict[str, Any]:
    over: dict[str, Any] = {"encoder": dict(TINY_ENCODER)}
    if objective == "contrastive":
        over["objective"] = {"embed_dim": 32}
    else:
        over["objective"] = {
            "decoder": {
                "name": "transformer",
                "dim": 32,
                "num_layers": 1,
                "num_heads": 2,
                "ff_dim": 64,
                "dropout": 0.1,
                "max_len": 64,
            }
        }
        over["tokenizer"] = {"max_len": 64}
    return over


def _write_random_hf_model(folder: Path, tiny: bool) -> Path:
    """A randomly initialised BERT (BERT-base shape, or tiny) saved with ``save_pretrained``."""
    import transformers

    if (folder / "config.json").is_file():
        return folder
    torch.manual_seed(0)
    conf = transformers.BertConfig(**(TINY_BERT if tiny else {}))
    transformers.BertModel(conf).save_pretrained(str(folder))
    return folder


def _quiet_transformers() -> None:
    """No per-model progress bars from transformers (they flood the device's output tail)."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        return
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def _exists(path: Any) -> bool:
    return bool(path) and Path(str(path)).expanduser().exists()


def prepare_config(
    config: Path, objective: str, tiny: bool, overrides: Sequence[str], work_dir: Path
) -> tuple[dict[str, Any], Any, list[str]]:
    """Load the config, apply the tiny preset and the overrides, and replace files the benchmark
    does not need (see the module docstring). Returns ``(cfg, tokenizer, notes)``."""
    from toolkit.config import apply_overrides, deep_merge, load_config

    cfg = load_config(config)
    if tiny:
        cfg = deep_merge(cfg, _tiny_overrides(objective))
        if objective == "contrastive" and "encoder" in cfg:
            cfg["encoder"] = dict(TINY_ENCODER)  # replace (not merge) the preset keys
    apply_overrides(cfg, overrides, {})
    if (cfg.get("objective") or {}).get("name") != objective:
        raise SystemExit(
            f"ERROR: --objective {objective} but the config's objective is "
            f"{(cfg.get('objective') or {}).get('name')!r}"
        )
    notes: list[str] = []
    fe = cfg.get("frontend") or {}
    if fe.get("stats_file") and not _exists(fe["stats_file"]):
        notes.append(f"frontend.stats_file {fe['stats_file']} missing: no CMVN (same cost)")
        fe["stats_file"] = None
    tok_cfg = dict(cfg.get("tokenizer") or {})
    tokenizer: Any = None
    if objective == "contrastive":
        text = dict(cfg["objective"].get("text_encoder") or {})
        if text.get("name") == "hf":
            _quiet_transformers()
        if text.get("name") == "hf" and not _exists(text.get("path")):
            if has_module("transformers"):
                path = _write_random_hf_model(
                    work_dir / ("bert-tiny-random" if tiny else "bert-base-random"), tiny
                )
                notes.append(f"text tower: random-init {'tiny ' if tiny else ''}BERT at {path}")
                text["path"] = str(path)
            else:
                text = dict(BERT_BASE_AS_TRANSFORMER)
                if tiny:
                    text.update(dim=32, num_layers=2, num_heads=2, ff_dim=64, max_len=64)
                notes.append("transformers missing: text tower = toolkit 'transformer' instead")
            cfg["objective"]["text_encoder"] = text
        if (
            text.get("name") == "hf"
            and tok_cfg.get("name") == "hf"
            and _exists(tok_cfg.get("path"))
        ):
            from toolkit.model import build_tokenizer

            tokenizer = build_tokenizer(cfg)
        else:
            vocab = TINY_BERT["vocab_size"] if tiny else 30522
            tokenizer = HashTokenizer(vocab, 0, 101, 102, 999, int(tok_cfg.get("max_len", 128)))
            notes.append(f"tokenizer: HashTokenizer (BERT ids, vocab {vocab})")
    else:
        if tok_cfg.get("name") == "sentencepiece" and _exists(tok_cfg.get("model")):
            from toolkit.model import build_tokenizer

            tokenizer = build_tokenizer(cfg)
        else:
            vocab = 200 if tiny else 5000
            tokenizer = HashTokenizer(vocab, 0, 2, 3, 4, int(tok_cfg.get("max_len", 128)))
            notes.append(f"tokenizer: HashTokenizer (sentencepiece ids, vocab {vocab})")
    return cfg, tokenizer, notes


# ----------------------------------------------------------------------------- the step
@dataclass
class Bench:
    """One built model + optimiser + scheduler inside a real :class:`Trainer`."""

    trainer: Any
    model: torch.nn.Module
    params: int
    encoder_params: int


def build_bench(
    cfg: dict[str, Any],
    tokenizer: Any,
    mode: str,
    device: torch.device,
    run_dir: Path,
    encoder_batch_count: int,
    seed: int,
) -> Bench:
    """Model, optimiser and scheduler built as ``toolkit/bin/train.py`` builds them, wrapped in a
    :class:`toolkit.train.trainer.Trainer` whose precision follows ``mode``."""
    from toolkit.model import build_model
    from toolkit.schema import train_config
    from toolkit.train.optim import build_optimization
    from toolkit.train.trainer import Trainer

    torch.manual_seed(seed)
    model = build_model(cfg, tokenizer).to(device)
    tcfg = replace(
        train_config(cfg),
        precision="fp32" if mode.endswith("fp32") else "bf16",
        device=device.type,
        progress=False,
        accum_grad=1,  # every step an optimiser step
        log_cut_ids=False,
        max_bad_steps=2**31,  # non-finite steps are counted (skipped_updates), never fatal
    )
    optimizer, scheduler = build_optimization(cfg, model, tcfg.max_steps)
    enc = model.encoder
    if encoder_batch_count != 0 and hasattr(enc, "batch_count"):
        steady = int(5 * getattr(enc, "warmup_batches", 0)) + 1  # every schedule value final
        enc.batch_count.fill_(steady if encoder_batch_count < 0 else encoder_batch_count)
    trainer = Trainer(model, optimizer, scheduler, [], None, tcfg, run_dir, device)
    model.train()
    return Bench(
        trainer=trainer,
        model=model,
        params=sum(p.numel() for p in model.parameters() if p.requires_grad),
        encoder_params=sum(p.numel() for p in enc.parameters()),
    )


def timed_step(trainer: Any, batch: dict[str, Any], marks: Marks) -> dict[str, Any]:
    """One :meth:`Trainer.train_step` (``accum_grad`` = 1: one optimiser step) with marks at its
    start and where its forward, backward and update phases end (``trainer.phase_hooks``); a
    phase that did not run (the batch was dropped) ends where the one before did. Returns the
    marks (``t0``..``t3``) and whether the update happened."""
    t = [marks.mark()]

    def hook(phase: str) -> None:
        t.append(marks.mark())

    trainer.phase_hooks.append(hook)
    try:
        res = trainer.train_step(batch)
    finally:
        trainer.phase_hooks.remove(hook)
    t += [t[-1]] * (4 - len(t))
    return {"t": tuple(t), "updated": res["updated"]}


def count_flops(trainer: Any, batch: dict[str, Any]) -> int:
    """Model FLOPs of one forward + backward (``FlopCounterMode``: matmul / conv / attention),
    in the trainer's precision; the gradients are dropped afterwards."""
    from torch.utils.flop_counter import FlopCounterMode

    from toolkit.train.trainer import to_device

    batch = to_device(batch, trainer.device)
    with FlopCounterMode(display=False) as counter:
        with trainer.autocast():
            out = trainer.model(batch)
        out["loss"].backward()
    trainer.optimizer.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())


def matmul_ceiling(device: torch.device, tiny: bool) -> dict[str, tuple[float, str]]:
    """Measured dense-matmul rates in TFLOP/s, with a label of what was measured, keyed by the
    precision a row runs in. CUDA: ``bf16`` (``n=8192``), the ceiling of every row. CPU: ``fp32``
    (``n=256``/``1024``) and, where the CPU has native bf16 (where the trainer's bf16 rows run
    bf16), ``bf16`` too. The first entry is the run's main ceiling."""
    from toolkit.train.trainer import native_bf16

    if device.type == "cuda":
        plan = [("bf16", 8192, torch.bfloat16, 20)]
    else:
        n = 256 if tiny else 1024
        plan = [("fp32", n, torch.float32, 5)]
        if native_bf16(device):
            plan.append(("bf16", n, torch.bfloat16, 5))
    out: dict[str, tuple[float, str]] = {}
    for name, n, dtype, reps in plan:
        gen = torch.Generator(device=device).manual_seed(0)
        a = torch.randn(n, n, device=device, dtype=dtype, generator=gen)
        b = torch.randn(n, n, device=device, dtype=dtype, generator=gen)
        for _ in range(3):
            a @ b
        sync(device)
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            a @ b
            sync(device)
            times.append(time.perf_counter() - t)
        out[name] = (2 * n**3 / statistics.median(times) / 1e12, f"{name} matmul n={n}")
    return out


# ----------------------------------------------------------------------------- batches
def synthetic_batch(
    batch_size: int,
    seconds: float,
    sampling_rate: int,
    tokens: tuple[int, int],
    tokenizer: Any,
    gen: torch.Generator,
    pin: bool,
) -> dict[str, Any]:
    """A host batch as ``CaptionDataset`` yields it: ``audio (B, S)`` (noise at about -20 dBFS,
    every clip ``seconds`` long), ``text_tokens (B, L)`` (``bos``, random ids, ``eos``, pad; the
    lengths uniform in ``tokens``, one row at the maximum), ``text_lens``, captions, cut ids."""
    samples = int(round(seconds * sampling_rate))
    audio = 0.1 * torch.randn(batch_size, samples, generator=gen)
    lo, hi = tokens
    lens = torch.randint(lo, hi + 1, (batch_size,), generator=gen)
    lens[0] = hi
    first = getattr(tokenizer, "first_id", 4)
    ids = torch.randint(first, tokenizer.vocab_size, (batch_size, hi), generator=gen)
    pos = torch.arange(hi)[None]
    ids[:, 0] = tokenizer.bos_id
    ids = torch.where(pos == (lens[:, None] - 1), torch.full_like(ids, tokenizer.eos_id), ids)
    ids = torch.where(pos < lens[:, None], ids, torch.full_like(ids, tokenizer.pad_id))
    batch: dict[str, Any] = {
        "audio": audio.pin_memory() if pin else audio,
        "audio_lens": torch.full((batch_size,), samples, dtype=torch.long),
        "text_tokens": ids.pin_memory() if pin else ids,
        "text_lens": lens,
        "duration": batch_size * samples / sampling_rate,
        "captions": ["synthetic"] * batch_size,
        "cut_ids": [f"synthetic-{i}" for i in range(batch_size)],
        "labels": {},
        "num_skipped": 0,
    }
    return batch


def random_caption(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 25)))


def _write_shar_shard(job: tuple[Path, int, int, int, float, int, int]) -> int:
    """Write clips ``[start, start + n)`` as shard ``index`` of a Shar under ``out_dir``."""
    import numpy as np
    import soundfile as sf
    from lhotse import CutSet

    from toolkit.data.aggregate.mix import export_shar
    from toolkit.data.cuts import make_caption_cut

    out_dir, index, start, n, seconds, sampling_rate, seed = job
    rng = random.Random(f"{seed}-{index}")
    nrng = np.random.default_rng([seed, index])
    part = out_dir / f"_part{index:06d}"
    src = part / "src"
    src.mkdir(parents=True, exist_ok=True)
    samples = int(round(seconds * sampling_rate))
    t = np.arange(samples) / sampling_rate
    cuts = []
    for i in range(start, start + n):
        f0 = 100.0 + 900.0 * rng.random()
        wave = 0.2 * np.sin(2 * np.pi * f0 * t) + 0.05 * nrng.standard_normal(samples)
        path = src / f"clip{i:07d}.flac"
        sf.write(path, wave.astype(np.float32), sampling_rate)
        caps = [random_caption(rng), random_caption(rng)]
        cut = make_caption_cut(
            path, f"synthetic-{i:07d}", caps, ["short", "detailed"], "sound", "bench"
        )
        cuts.append(cut)
    manifest = src / "cuts.jsonl.gz"
    CutSet.from_cuts(cuts).to_file(manifest)
    export_shar(manifest, part / "shar", audio_format="flac", shard_size=n)
    for field_name, ext in (("cuts", "jsonl.gz"), ("recording", "tar")):
        os.replace(
            part / "shar" / f"{field_name}.000000.{ext}",
            out_dir / f"{field_name}.{index:06d}.{ext}",
        )
    for p in (*src.iterdir(), *(part / "shar").iterdir()):
        p.unlink()
    for d in (src, part / "shar", part):
        d.rmdir()
    return n


def make_synthetic_shar(
    out_dir: Path,
    clips: int,
    seconds: float = 10.0,
    sampling_rate: int = 16000,
    seed: int = 0,
    shard_size: int = 200,
    jobs: int | None = None,
) -> Path:
    """Write ``clips`` synthetic captioned clips (a tone + noise, two captions each) as Lhotse
    Shar with FLAC audio under ``out_dir``: shards of ``shard_size`` clips, each written by the
    project's ``export_shar`` in one of ``jobs`` processes (default: all cores) and numbered
    ``cuts.NNNNNN.jsonl.gz`` / ``recording.NNNNNN.tar``. Read back with
    ``CutSet.from_shar(in_dir=out_dir)``."""
    import multiprocessing as mp

    if clips < 1 or shard_size < 1:
        raise ValueError("clips and shard_size must be >= 1")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if any(out_dir.glob("cuts.*")):
        raise SystemExit(f"ERROR: {out_dir} already holds a Shar; remove it or pick a new folder")
    work = [
        (out_dir, k, start, min(shard_size, clips - start), seconds, sampling_rate, seed)
        for k, start in enumerate(range(0, clips, shard_size))
    ]
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(work)))
    if jobs == 1:
        done = sum(map(_write_shar_shard, work))
    else:
        with mp.get_context("fork").Pool(jobs) as pool:
            done = sum(pool.map(_write_shar_shard, work))
    assert done == clips
    return out_dir


def data_batches(
    source: str,
    batch_size: int,
    clip_seconds: float,
    tokenizer: Any,
    cfg: dict[str, Any],
    num_workers: int,
    seed: int,
) -> Iterator[dict[str, Any]]:
    """Endless batches of the project's data path for ``--data shar:DIR`` / ``cuts:MANIFEST``:
    the training loader (:func:`toolkit.data.streaming.train_loader`, ``max_duration`` =
    ``batch_size`` clips of ``clip_seconds``) → ``CaptionDataset`` (crop to ``clip_seconds``) in
    ``num_workers`` workers; epochs repeat."""
    from toolkit.data.dataset import CaptionDataset
    from toolkit.data.streaming import train_loader
    from toolkit.schema import data_config

    kind, _, where = source.partition(":")
    dcfg = data_config(cfg)
    if kind not in ("shar", "cuts"):
        raise SystemExit(f"ERROR: --data {source}: expected synthetic, shar:DIR or cuts:MANIFEST")
    if not Path(where).exists():
        raise SystemExit(f"ERROR: --data {source}: no such directory or manifest")
    dataset = CaptionDataset(
        tokenizer, sampling_rate=dcfg.sampling_rate, max_clip_duration=clip_seconds, seed=seed
    )
    # half a clip of slack so that float sums of equal durations still give batch_size clips
    loader = train_loader(
        where,
        dataset,
        (batch_size + 0.5) * clip_seconds,
        key="--data",
        num_workers=num_workers,
        seed=seed,
        bucketing=dcfg.bucketing,
        num_buckets=dcfg.num_buckets,
        min_duration=dcfg.min_clip_duration,
        worker_start=dcfg.worker_start,
    )
    epoch = 0
    while True:
        loader.set_epoch(epoch)
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            raise SystemExit(f"ERROR: --data {source}: the data produced no batch")
        epoch += 1


# ----------------------------------------------------------------------------- measurement
@dataclass
class Row:
    """One measured (mode, batch size) configuration; times in ms, rates per second."""

    mode: str
    batch: int
    objective: str
    data: str
    status: str = "ok"
    steps: int = 0
    audio_s_per_s: float | None = None
    step_ms: float | None = None
    step_ms_min: float | None = None
    step_ms_max: float | None = None
    fwd_ms: float | None = None
    bwd_ms: float | None = None
    opt_ms: float | None = None
    flops_per_step: float | None = None
    achieved_tflops: float | None = None
    mfu: float | None = None
    peak_mem_gib: float | None = None
    compile_s: float | None = None
    recompiles: int | None = None
    graph_breaks: int | None = None
    idle_share: float | None = None
    mean_batch: float | None = None
    skipped_updates: int = 0
    precision: str = ""
    ceiling_tflops: float | None = None  # the matmul ceiling of ``precision`` behind ``mfu``
    params_m: float | None = None
    encoder_params_m: float | None = None
    speedup_vs_eager_fp32: float | None = None
    speedup_vs_eager_bf16: float | None = None
    notes: list[str] = field(default_factory=list)


def _dynamo_counts() -> tuple[int, int]:
    """(graphs compiled so far, graph breaks so far) from dynamo's counters."""
    try:
        from torch._dynamo.utils import counters
    except ImportError:
        return 0, 0
    return int(counters["stats"]["unique_graphs"]), int(sum(counters["graph_break"].values()))


def compile_model(bench: Bench, backend: str, dynamic: bool | None) -> None:
    """``torch.compile`` the encoder and the objective (loss + text tower) in place."""
    import torch._dynamo

    torch._dynamo.reset()
    bench.model.encoder.compile(backend=backend, dynamic=dynamic)
    bench.model.objective.compile(backend=backend, dynamic=dynamic)


def measure(
    args: argparse.Namespace,
    cfg: dict[str, Any],
    tokenizer: Any,
    mode: str,
    batch_size: int,
    device: torch.device,
    ceilings: dict[str, float],
    flops_cache: dict[int, int],
    work_dir: Path,
) -> Row:
    """Build a fresh model for ``mode``, count its FLOPs (once per batch size), warm up (and
    compile), then time ``args.steps`` steps; synthetic batches or the ``--data`` loader."""
    row = Row(mode=mode, batch=batch_size, objective=args.objective, data=args.data)
    bench = build_bench(cfg, tokenizer, mode, device, work_dir, args.encoder_batch_count, args.seed)
    row.params_m, row.encoder_params_m = bench.params / 1e6, bench.encoder_params / 1e6
    from toolkit.train.trainer import uses_bf16

    asked = bench.trainer.cfg.precision  # build_bench's: fp32 or bf16 by mode
    row.precision = "bf16" if uses_bf16(asked, device) else "fp32"
    if asked == "bf16" and row.precision == "fp32":
        row.notes.append(f"{device} has no native bf16 (the trainer then runs fp32): ran fp32")
    marks = Marks(device)
    gen = torch.Generator().manual_seed(args.seed)
    sr = int((cfg.get("data") or {}).get("sampling_rate", 16000))
    synthetic = args.data == "synthetic"
    if synthetic:
        pool = [
            synthetic_batch(
                batch_size,
                args.clip_seconds,
                sr,
                args.caption_tokens,
                tokenizer,
                gen,
                pin=device.type == "cuda",
            )
            for _ in range(2)
        ]
        source: Iterator[dict[str, Any]] = (pool[i % 2] for i in range(10**9))
    else:
        source = data_batches(
            args.data, batch_size, args.clip_seconds, tokenizer, cfg, args.num_workers, args.seed
        )

    first = next(source)
    if batch_size not in flops_cache:
        log(f"{mode} batch {batch_size}: counting FLOPs of one forward + backward")
        flops_cache[batch_size] = count_flops(bench.trainer, first)
    flops = flops_cache[batch_size]
    flops_per_audio_s = flops / max(float(first["duration"]), 1e-9)
    compiled = mode.startswith("compiled")
    if compiled:
        dynamic = {"auto": None, "true": True, "false": False}[args.compile_dynamic]
        compile_model(bench, args.compile_backend, dynamic)
    if device.type == "cuda":
        sync(device)
        torch.cuda.reset_peak_memory_stats(device)
    warmup = max(args.warmup, 3) if compiled else args.warmup
    log(f"{mode} batch {batch_size}: {warmup} warm-up step(s){' (compiling)' if compiled else ''}")
    warm_times = []
    pending = first
    for _ in range(warmup):
        t = time.perf_counter()
        batch = pending if pending is not None else next(source)
        pending = None
        timed_step(bench.trainer, batch, marks)
        sync(device)
        warm_times.append(time.perf_counter() - t)
    graphs0, breaks0 = _dynamo_counts()
    log(f"{mode} batch {batch_size}: {args.steps} timed step(s)")
    walls, waits, fwd, bwd, opt, secs, sizes = [], [], [], [], [], [], []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        batch = pending if pending is not None else next(source)
        pending = None
        t1 = time.perf_counter()
        res = timed_step(bench.trainer, batch, marks)
        sync(device)
        t2 = time.perf_counter()
        if not res["updated"]:
            row.skipped_updates += 1
        a, b, c, d = res["t"]
        walls.append(t2 - t0)
        waits.append(t1 - t0)
        fwd.append(marks.ms(a, b))
        bwd.append(marks.ms(b, c))
        opt.append(marks.ms(c, d))
        secs.append(float(batch["duration"]))
        sizes.append(len(batch["cut_ids"]))
    graphs1, _ = _dynamo_counts()
    row.steps = len(walls)
    step_times = [w - q for w, q in zip(walls, waits)]
    row.step_ms = 1000 * statistics.median(step_times)
    row.step_ms_min, row.step_ms_max = 1000 * min(step_times), 1000 * max(step_times)
    row.fwd_ms, row.bwd_ms, row.opt_ms = (statistics.median(x) for x in (fwd, bwd, opt))
    row.mean_batch = sum(sizes) / len(sizes)
    if synthetic:
        row.audio_s_per_s = secs[0] / statistics.median(step_times)
        row.flops_per_step = float(flops)
        achieved = flops / statistics.median(step_times)
    else:  # wall clock including waits for the loader; FLOPs scaled by audio seconds
        total = sum(walls)
        row.audio_s_per_s = sum(secs) / total
        row.idle_share = sum(waits) / total
        row.flops_per_step = flops_per_audio_s * sum(secs) / len(secs)
        achieved = flops_per_audio_s * sum(secs) / total
        row.notes.append("MFU from FLOPs/audio-second of the first batch")
    row.achieved_tflops = achieved / 1e12
    # the ceiling of the precision the row ran in (CPU bf16 rows: the bf16 matmul rate)
    row.ceiling_tflops = ceilings.get(row.precision, next(iter(ceilings.values())))
    row.mfu = achieved / 1e12 / row.ceiling_tflops if row.ceiling_tflops > 0 else None
    if device.type == "cuda":
        row.peak_mem_gib = torch.cuda.max_memory_allocated(device) / 2**30
    if compiled:
        row.compile_s = max(0.0, sum(warm_times) - warmup * statistics.median(walls))
        row.recompiles = graphs1 - graphs0
        row.graph_breaks = breaks0
        if row.recompiles:
            row.notes.append(f"{row.recompiles} graph(s) compiled during the timed steps")
    if row.skipped_updates:
        row.notes.append(f"{row.skipped_updates} step(s) skipped by the non-finite checks")
    return row


def add_speedups(rows: list[Row]) -> None:
    """Fill ``speedup_vs_eager_fp32`` / ``_bf16``: throughput over the same batch size's eager
    row of the same objective and data (None where that row is missing or failed)."""
    base = {
        (r.mode, r.batch, r.objective, r.data): r.audio_s_per_s
        for r in rows
        if r.status == "ok" and r.audio_s_per_s
    }
    for r in rows:
        if r.status != "ok" or not r.audio_s_per_s:
            continue
        for ref, attr in (
            ("eager-fp32", "speedup_vs_eager_fp32"),
            ("eager-bf16", "speedup_vs_eager_bf16"),
        ):
            b = base.get((ref, r.batch, r.objective, r.data))
            setattr(r, attr, r.audio_s_per_s / b if b else None)


def _fmt(v: Any, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def format_table(rows: list[Row]) -> str:
    """The Markdown results table (one line per row)."""
    head = (
        "| objective | data | mode | batch | status | audio-s/s | step ms | fwd/bwd/opt ms | "
        "TFLOP/s | MFU | peak GiB | vs eager-fp32 | vs eager-bf16 | compile s | "
        "recompiles | idle share |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        ok = r.status == "ok"
        phases = (
            f"{r.fwd_ms:.0f}/{r.bwd_ms:.0f}/{r.opt_ms:.0f}" if ok and r.fwd_ms is not None else "-"
        )
        lines.append(
            "| "
            + " | ".join(
                [
                    r.objective,
                    r.data if len(r.data) <= 24 else "…" + r.data[-23:],
                    r.mode,
                    str(r.batch),
                    r.status,
                    _fmt(r.audio_s_per_s, ",.0f") if ok else "-",
                    _fmt(r.step_ms, ".1f") if ok else "-",
                    phases,
                    _fmt(r.achieved_tflops, ".4g") if ok else "-",
                    _fmt(None if r.mfu is None else 100 * r.mfu, ".1f")
                    + ("%" if ok and r.mfu is not None else ""),
                    _fmt(r.peak_mem_gib, ".1f"),
                    _fmt(r.speedup_vs_eager_fp32, ".2f") + ("×" if r.speedup_vs_eager_fp32 else ""),
                    _fmt(r.speedup_vs_eager_bf16, ".2f") + ("×" if r.speedup_vs_eager_bf16 else ""),
                    _fmt(r.compile_s, ".0f"),
                    _fmt(r.recompiles, "d"),
                    _fmt(None if r.idle_share is None else 100 * r.idle_share, ".1f")
                    + ("%" if r.idle_share is not None else ""),
                ]
            )
            + " |"
        )
    return "\n".join(lines)


# ----------------------------------------------------------------------------- CLI
class _Stop(BaseException):
    """Raised by the SIGTERM handler (``timeout``): finish with the rows measured so far."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise _Stop()


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def write_json(path: Path | None, meta: dict[str, Any], rows: list[Row]) -> None:
    """``{"meta": ..., "rows": [...]}`` written atomically (after every row)."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps({"meta": meta, "rows": [asdict(r) for r in rows]}, indent=1))
    os.replace(tmp, path)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("overrides", nargs="*", help="config overrides key=value (as for train)")
    p.add_argument("--config", type=Path, help="experiment YAML (default: the paper preset)")
    p.add_argument("--objective", choices=tuple(PAPER_CONF), default="contrastive")
    p.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"))
    p.add_argument("--tiny", action="store_true", help="tiny dims, batch 2, 1.5 s clips, 2 steps")
    p.add_argument("--batch-sizes", type=parse_ints, help="clips per step (default 64,128,256)")
    p.add_argument(
        "--compiled-batch-sizes",
        type=parse_ints,
        help="batch sizes of compiled modes (default: all)",
    )
    p.add_argument("--modes", default=",".join(MODES), help=f"comma list of {', '.join(MODES)}")
    p.add_argument("--clip-seconds", type=float, help="clip length in seconds (default 10)")
    p.add_argument(
        "--caption-tokens",
        type=parse_range,
        help="min:max tokens per caption incl. bos/eos (default 12:32)",
    )
    p.add_argument("--warmup", type=int, help="untimed steps first (default 3; compiled >= 3)")
    p.add_argument("--steps", type=int, help="timed steps (default 10)")
    p.add_argument("--data", default="synthetic", help="synthetic | shar:DIR | cuts:MANIFEST")
    p.add_argument("--num-workers", type=int, help="loader workers (default: data.num_workers)")
    p.add_argument(
        "--encoder-batch-count",
        type=int,
        default=-1,
        help="encoder schedule position: -1 = steady state (5 x warmup_batches), 0 = fresh",
    )
    p.add_argument("--compile-backend", default="inductor")
    p.add_argument(
        "--compile-dynamic",
        choices=("auto", "true", "false"),
        default="auto",
        help="torch.compile(dynamic=None/True/False); auto lets dynamo mark changing shapes "
        "dynamic after one recompile",
    )
    p.add_argument(
        "--compile-on-cpu", action="store_true", help="run compiled modes on a CPU (slow)"
    )
    p.add_argument("--max-seconds", type=float, help="skip configurations started after this")
    p.add_argument("--json", type=Path, help="write every row (and the metadata) here")
    p.add_argument("--work-dir", type=Path, help="scratch folder (default: a temporary one)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--make-synthetic-shar", type=Path, metavar="DIR", help="write a test Shar")
    p.add_argument("--clips", type=int, default=1000, help="clips of --make-synthetic-shar")
    return p


def _defaults(args: argparse.Namespace) -> None:
    tiny = args.tiny
    if args.batch_sizes is None:
        args.batch_sizes = [2] if tiny else [64, 128, 256]
    if args.clip_seconds is None:
        args.clip_seconds = 1.5 if tiny else 10.0
    if args.caption_tokens is None:
        args.caption_tokens = (4, 10) if tiny else (12, 32)
    if args.warmup is None:
        args.warmup = 1 if tiny else 3
    if args.steps is None:
        args.steps = 2 if tiny else 10
    if args.steps < 1 or args.warmup < 0:
        raise SystemExit("ERROR: --steps must be >= 1 and --warmup >= 0")
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise SystemExit(f"ERROR: --modes: unknown {unknown}; known: {', '.join(MODES)}")
    args.modes = modes


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from toolkit.utils.malloc import keep_freed_memory

    keep_freed_memory()  # as toolkit-train does: the figures are those of real training
    if args.make_synthetic_shar is not None:
        require_lhotse()
        t = time.perf_counter()
        seconds = args.clip_seconds or (1.5 if args.tiny else 10.0)
        make_synthetic_shar(args.make_synthetic_shar, args.clips, seconds, seed=args.seed)
        print(
            f"wrote {args.clips} synthetic {seconds:g} s clips as Shar (flac) to "
            f"{args.make_synthetic_shar} in {time.perf_counter() - t:.1f} s"
        )
        return 0
    _defaults(args)
    require_lhotse()
    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("ERROR: --device cuda but no CUDA device is visible")
    if args.data != "synthetic" and not args.data.startswith(("shar:", "cuts:")):
        raise SystemExit(
            f"ERROR: --data {args.data}: expected synthetic, shar:DIR or cuts:MANIFEST"
        )
    tmp = None
    if args.work_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="pretrain_bench_")
        args.work_dir = Path(tmp.name)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    config = args.config or PAPER_CONF[args.objective]
    cfg, tokenizer, notes = prepare_config(
        config, args.objective, args.tiny, args.overrides, args.work_dir
    )
    if args.num_workers is None:
        args.num_workers = int((cfg.get("data") or {}).get("num_workers", 2))
    measured = matmul_ceiling(device, args.tiny)
    ceilings = {name: tflops for name, (tflops, _) in measured.items()}
    ceiling, ceiling_what = next(iter(measured.values()))
    meta: dict[str, Any] = {
        "device": _device_name(device),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "ceiling_tflops": ceiling,
        "ceiling": ceiling_what,
        "ceilings": ceilings,
        "config": str(config),
        "overrides": list(args.overrides),
        "encoder": cfg.get("encoder"),
        "text_encoder": (cfg.get("objective") or {}).get("text_encoder"),
        "optim": cfg.get("optim"),
        "clip_seconds": args.clip_seconds,
        "caption_tokens": list(args.caption_tokens),
        "warmup": args.warmup,
        "steps": args.steps,
        "encoder_batch_count": args.encoder_batch_count,
        "notes": notes,
        "command": " ".join(sys.argv),
    }
    print(
        f"# {meta['device']}, torch {torch.__version__}: "
        + "; ".join(f"{what} = {tflops:.1f} TFLOP/s" for tflops, what in measured.values())
    )
    for n in notes:
        print(f"# {n}")
    sys.stdout.flush()
    previous_handler = signal.signal(signal.SIGTERM, _on_sigterm)
    rows: list[Row] = []
    flops_cache: dict[int, int] = {}
    oom_at: dict[str, int] = {}
    start = time.perf_counter()
    stopped = False
    plan = [
        (mode, b)
        for mode in args.modes
        for b in (
            args.compiled_batch_sizes
            if mode.startswith("compiled") and args.compiled_batch_sizes
            else args.batch_sizes
        )
    ]
    try:
        for mode, b in plan:
            row = Row(mode=mode, batch=b, objective=args.objective, data=args.data)
            skip = None
            if stopped:
                skip = "skipped: stopped (SIGTERM)"
            elif args.max_seconds is not None and time.perf_counter() - start > args.max_seconds:
                skip = f"skipped: past --max-seconds {args.max_seconds:g}"
            elif mode.startswith("compiled") and not hasattr(torch, "compile"):
                skip = "skipped: no torch.compile"
            elif mode.startswith("compiled") and device.type == "cpu" and not args.compile_on_cpu:
                skip = "skipped: compile on CPU (pass --compile-on-cpu)"
            elif mode in oom_at and b >= oom_at[mode]:
                skip = f"OOM (skipped: OOM at batch {oom_at[mode]})"
            if skip is None:
                t = time.perf_counter()
                try:
                    row = measure(
                        args, cfg, tokenizer, mode, b, device, ceilings, flops_cache, args.work_dir
                    )
                except _Stop:
                    stopped = True
                    row.status = "stopped (SIGTERM)"
                except Exception as e:  # one failing configuration must not end the sweep
                    if is_oom(e):
                        row.status = "OOM"
                        oom_at[mode] = min(b, oom_at.get(mode, b))
                    else:
                        import traceback

                        traceback.print_exc()
                        row.status = f"error: {type(e).__name__}: {str(e).splitlines()[0][:120]}"
                free_memory(device, compiled=mode.startswith("compiled"))
                print(
                    f"# {mode} batch {b}: {row.status}"
                    + (f", {row.audio_s_per_s:,.0f} audio-s/s" if row.audio_s_per_s else "")
                    + f" ({time.perf_counter() - t:.1f} s)",
                    file=sys.stderr,
                    flush=True,
                )
            else:
                row.status = skip
            rows.append(row)
            add_speedups(rows)
            write_json(args.json, meta, rows)
    finally:  # an in-process caller (the tests) must not keep this handler: forked children
        # (e.g. a multiprocessing pool's workers) would inherit it, and Pool.terminate's SIGTERM
        # would raise inside them instead of ending them
        signal.signal(signal.SIGTERM, previous_handler)
    print(format_table(rows))
    if tmp is not None:
        tmp.cleanup()
    if stopped:
        return 124
    return 0 if any(r.status == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
