#!/usr/bin/env python3
"""Speed and memory of the training data stream alone (no model): sources → batch dicts.

The stream is the trainer's (``toolkit.data.streaming.train_loader`` with ``CaptionDataset``:
slots per dataloader worker, duration-bucketing sampler, audio decoded in the workers).

1. **Throughput.** ``--clips`` synthetic captioned clips (tones + noise, 16 kHz mono, uniform
   ``--seconds`` long) are written once as individual audio files listed in a JSONL manifest
   (``CutSet.to_file``) and once as a Lhotse Shar directory with FLAC in the tars (the project's
   ``export_shar``: ``CutSet.to_shar(dir, fields={"recording": "flac"})``). After reading every
   file once (page cache) and a short untimed pass per source, a whole epoch is timed for each
   (source, ``--workers``), ``--repeats`` times interleaved; the table gives the median epoch
   (the worker start-up and the sampler's duration-bin estimate included, as in training), cuts/s,
   audio-seconds/s and the ratio to the files / 0-worker baseline of the same process. Every
   epoch must deliver every cut exactly once (checked; the bench fails otherwise).
2. **Memory.** Two ``reference`` Shar corpora of short cuts (``--rss-seconds``) — ``--rss-small``
   (10k) and ``--rss-big`` (1M) cuts — are written directly as ``cuts.<n>.jsonl.gz`` (gzip + JSON
   lines; every cut's recording is one of 8 shared wav files, so the audio costs nothing to
   write). Each (corpus, ``--rss-workers``) is streamed in a fresh process: the whole epoch of the
   small corpus, and the first ``--rss-cuts`` cuts of the big one (0: its whole epoch); its
   shards are read lazily. Reported: the resident memory of the main process and of the largest
   dataloader worker at ⅓ and ⅔ of the stream (flat = nothing accumulates per cut), their peaks
   (``VmHWM`` of the main process, ``ru_maxrss`` of the joined workers) and the growth of the
   peaks from the small to the big corpus (target ≤ 10 %).

The last line gives the load average and how much parallel CPU the machine gave (two concurrent
CPU-bound processes against one): worker rows can only beat the 0-worker row by that much.

    python bench/data_stream.py [--work-dir /tmp/stream_bench] [--json out.json]
    python bench/data_stream.py --quick      # seconds; what test/test_bench_data_stream.py runs
"""

from __future__ import annotations

import argparse
import gc
import gzip
import hashlib
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SR = 16000
SOURCES = ("files", "shar")  # files first: the baseline
SOURCE_LABEL = {"files": "{fmt} files + JSONL manifest", "shar": "Shar, flac in tars"}
QUICK = dict(
    clips=48,
    seconds="0.5:2",
    shard_size=8,
    max_duration=8.0,
    repeats=1,
    rss_small=500,
    rss_big=4000,
    rss_shard_size=500,
    rss_cuts=0,
)


def ids_digest(ids: list[str]) -> str:
    """sha1 of the sorted, distinct cut ids: equal digests = the same set of cuts."""
    return hashlib.sha1("\n".join(sorted(set(ids))).encode()).hexdigest()


def _fresh(folder: Path, params: dict[str, Any]) -> bool:
    """True when ``folder`` already holds what ``params`` describe (from an earlier run with the
    same ``--work-dir``); otherwise empties it for a new corpus."""
    marker = folder / "params.json"
    if marker.is_file() and json.loads(marker.read_text()) == params:
        return True
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return False


# ------------------------------------------------------------------------- 1. throughput
def write_clip_corpus(
    folder: Path, clips: int, lo: float, hi: float, fmt: str, shard_size: int, seed: int = 0
) -> tuple[Path, Path, list[str], float]:
    """``clips`` tones + noise as ``folder/audio/<id>.<fmt>``, the manifest
    ``folder/cuts.jsonl.gz`` and the Shar ``folder/shar``; returns (manifest, shar dir, cut ids,
    audio seconds). Reuses an identical corpus already in ``folder``."""
    from lhotse import AudioSource, CutSet, MonoCut, Recording, SupervisionSegment

    from toolkit.data.aggregate.mix import export_shar

    params = dict(clips=clips, lo=lo, hi=hi, fmt=fmt, shard_size=shard_size, seed=seed)
    manifest, shar = folder / "cuts.jsonl.gz", folder / "shar"
    if not _fresh(folder, params):
        rng = np.random.default_rng(seed)
        longest = int(hi * SR) + 1
        t = np.arange(longest) / SR
        tones = [0.3 * np.sin(2 * np.pi * (150.0 + 60.0 * k) * t) for k in range(16)]
        noise = 0.05 * rng.standard_normal(2 * longest)
        (folder / "audio").mkdir()
        cuts = []
        for i in range(clips):
            n = int(round(float(rng.uniform(lo, hi)), 2) * SR)
            off = int(rng.integers(0, longest))
            x = (tones[i % len(tones)][:n] + noise[off : off + n]).astype(np.float32)
            cid = f"clip{i:06d}"
            path = folder / "audio" / f"{cid}.{fmt}"
            sf.write(path, x, SR, subtype="PCM_16")
            src = AudioSource(type="file", channels=[0], source=str(path))
            rec = Recording(cid, [src], SR, n, n / SR)
            sup = SupervisionSegment(
                cid,
                cid,
                0.0,
                rec.duration,
                custom={"caption": [f"a tone of {150 + 60 * (i % 16)} hertz in noise"]},
            )
            cuts.append(MonoCut(cid, 0.0, rec.duration, 0, recording=rec, supervisions=[sup]))
        CutSet.from_cuts(cuts).to_file(manifest)
        export_shar(manifest, shar, "flac", shard_size=shard_size)
        (folder / "params.json").write_text(json.dumps(params))
    cuts = CutSet.from_file(manifest)
    return manifest, shar, [c.id for c in cuts], float(sum(c.duration for c in cuts))


def warm_page_cache(*paths: Path) -> int:
    """Read every file under ``paths`` once; returns the bytes read."""
    total = 0
    for root in paths:
        for p in [root] if root.is_file() else sorted(root.rglob("*")):
            if p.is_file():
                with open(p, "rb") as f:
                    while chunk := f.read(1 << 22):
                        total += len(chunk)
    return total


def make_loader(value: Path, workers: int, max_duration: float, seed: int = 0):
    from toolkit.data.dataset import CaptionDataset
    from toolkit.data.streaming import train_loader

    dataset = CaptionDataset(tokenizer=None, sampling_rate=SR, max_clip_duration=10.0)
    return train_loader(str(value), dataset, max_duration, num_workers=workers, seed=seed)


def time_epoch(value: Path, workers: int, max_duration: float, limit: int = 0) -> dict[str, Any]:
    """One epoch (``limit`` > 0: its first ``limit`` batches, untimed use) of the stream."""
    loader = make_loader(value, workers, max_duration)
    loader.set_epoch(0)
    ids: list[str] = []
    audio_s, batches, skipped = 0.0, 0, 0
    t0 = time.perf_counter()
    for batch in loader:
        ids += batch["cut_ids"]
        audio_s += batch["duration"]
        skipped += batch["num_skipped"]
        batches += 1
        if limit and batches >= limit:
            break
    return dict(
        seconds=time.perf_counter() - t0, ids=ids, audio_s=audio_s, batches=batches, skipped=skipped
    )


def throughput(args: argparse.Namespace, work: Path) -> tuple[list[dict], dict]:
    lo, hi = (float(x) for x in args.seconds.split(":"))
    t0 = time.perf_counter()
    manifest, shar, corpus_ids, corpus_s = write_clip_corpus(
        work / "clips", args.clips, lo, hi, args.files_format, args.shard_size
    )
    gen_s = time.perf_counter() - t0
    shards = len(list(shar.glob("cuts.*.jsonl.gz")))
    print(
        f"# corpus: {args.clips} clips, {corpus_s:.0f} audio-s, {shards} Shar shards "
        f"(written in {gen_s:.1f} s)",
        flush=True,
    )
    value = {"files": manifest, "shar": shar}
    warmed = warm_page_cache(manifest, manifest.parent / "audio", shar)
    for src in SOURCES:  # lazy imports, first-use costs
        time_epoch(value[src], 0, args.max_duration, limit=2)
    print(f"# page cache warmed ({warmed / 2**20:.0f} MiB read)", flush=True)
    configs = [(src, w) for src in SOURCES for w in args.workers]
    runs: dict[tuple[str, int], list[dict]] = {c: [] for c in configs}
    for r in range(args.repeats):
        for src, w in configs:
            res = time_epoch(value[src], w, args.max_duration)
            runs[src, w].append(res)
            print(
                f"# repeat {r + 1}/{args.repeats} {src:5s} workers={w}: {res['seconds']:.2f} s, "
                f"{len(res['ids'])} cuts",
                flush=True,
            )
    want = ids_digest(corpus_ids)
    rows = []
    for src, w in configs:
        rs = runs[src, w]
        sec = statistics.median(r["seconds"] for r in rs)
        audio_s = statistics.median(r["audio_s"] for r in rs)
        digests = {ids_digest(r["ids"]) for r in rs}
        rows.append(
            {
                "source": src,
                "workers": w,
                "epoch_s": sec,
                "epoch_s_min": min(r["seconds"] for r in rs),
                "epoch_s_max": max(r["seconds"] for r in rs),
                "batches": rs[0]["batches"],
                "cuts": len(rs[0]["ids"]),
                "cuts_per_s": len(rs[0]["ids"]) / sec,
                "audio_s_per_s": audio_s / sec,
                "ids_sha1": digests.pop() if len(digests) == 1 else "differs between repeats",
                "duplicates": max(len(r["ids"]) - len(set(r["ids"])) for r in rs),
                "skipped": max(r["skipped"] for r in rs),
            }
        )
    base = rows[0]["cuts_per_s"]
    for row in rows:
        row["vs_baseline"] = row["cuts_per_s"] / base
        row["all_cuts_once"] = (
            row["ids_sha1"] == want and row["duplicates"] == 0 and row["cuts"] == args.clips
        )
    meta = dict(
        clips=args.clips,
        audio_s=corpus_s,
        shar_shards=shards,
        corpus_ids_sha1=want,
        corpus_write_s=gen_s,
        max_duration=args.max_duration,
        repeats=args.repeats,
        files_format=args.files_format,
    )
    return rows, meta


# ------------------------------------------------------------------------- 2. memory
def write_reference_corpus(
    folder: Path, cuts: int, shard_size: int, lo: float, hi: float, seed: int = 0
) -> float:
    """A ``reference`` Shar of ``cuts`` cuts in ``folder`` (only ``cuts.<n>.jsonl.gz``, written
    as text lines without building a Lhotse object per cut); each cut's recording is one of 8
    shared 0.5-s wav files. Returns the seconds it took (0 when reused)."""
    params = dict(cuts=cuts, shard_size=shard_size, lo=lo, hi=hi, seed=seed, v=1)
    if _fresh(folder, params):
        return 0.0
    t0 = time.perf_counter()
    rng = random.Random(seed)
    audio = folder.parent / "shared_audio"
    audio.mkdir(exist_ok=True)
    recs = []
    for k in range(8):
        path = audio / f"shared{k}.wav"
        n = int(max(hi, 0.5) * SR)
        if not path.is_file():
            x = 0.1 * np.random.default_rng(k).standard_normal(n)
            sf.write(path, x.astype(np.float32), SR, subtype="PCM_16")
        rec = {"id": f"shared{k}", "sources": [{"type": "file", "channels": [0], "source": str(path)}],
               "sampling_rate": SR, "num_samples": n, "duration": n / SR, "channel_ids": [0]}  # fmt: skip
        recs.append(json.dumps(rec))
    line = (
        '{"id": "%s", "start": 0.0, "duration": %s, "channel": 0, "supervisions": [{"id": "%s", '
        '"recording_id": "shared%d", "start": 0.0, "duration": %s, "channel": 0, "custom": '
        '{"caption": ["noise burst number %d"]}}], "recording": %s, "type": "MonoCut"}\n'
    )
    for s, start in enumerate(range(0, cuts, shard_size)):
        out = []
        for i in range(start, min(cuts, start + shard_size)):
            d = round(lo + (hi - lo) * rng.random(), 3)
            cid = f"ref{i:08d}"
            out.append(line % (cid, d, cid, i % 8, d, i % 1000, recs[i % 8]))
        with gzip.open(folder / f"cuts.{s:06d}.jsonl.gz", "wt", compresslevel=1) as f:
            f.write("".join(out))
    (folder / "params.json").write_text(json.dumps(params))
    return time.perf_counter() - t0


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def proc_status_mib(field: str, pid: int | str = "self") -> float:
    """``VmRSS`` / ``VmHWM`` (peak RSS) of a process in MiB (nan when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def worker_pids() -> list[int]:
    """The live descendants of this process: the dataloader workers (its children with
    ``data.worker_start: fork``; with ``forkserver``, children of the server it started, which
    is listed too)."""
    pids: list[int] = []
    parents: list[int | str] = ["self"]
    while parents:
        parent = parents.pop()
        try:
            tasks = list(Path(f"/proc/{parent}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                kids = [int(x) for x in (task / "children").read_text().split()]
            except OSError:
                continue
            pids += kids
            parents += kids
    return pids


def rss_now() -> tuple[float, float]:
    """Current RSS of this process and of its largest descendant (0 without any), MiB."""
    kids = [proc_status_mib("VmRSS", pid) for pid in worker_pids()]
    return proc_status_mib("VmRSS"), max([k for k in kids if k == k], default=0.0)


def worker_peak_now() -> float:
    """The largest ``VmHWM`` (peak RSS) among the live descendants, MiB (0 without any)."""
    peaks = [proc_status_mib("VmHWM", pid) for pid in worker_pids()]
    return max([p for p in peaks if p == p], default=0.0)


def rss_child(spec: dict[str, Any]) -> dict[str, Any]:
    """(In a fresh process.) Stream ``spec["dir"]``; report cuts, seconds and memory.

    The main process's peak is its ``VmHWM``, not ``ru_maxrss``: Linux carries the high-water
    mark of the process that ran ``exec`` into ``ru_maxrss`` of the new program, so a child
    started by a big parent would report at least the parent's size. The workers' peak is their
    ``VmHWM``, read after every batch while they live: ``RUSAGE_CHILDREN`` would miss workers
    that are the children of a forkserver (``data.worker_start``)."""
    import torch

    torch.set_num_threads(1)
    loader = make_loader(Path(spec["dir"]), spec["workers"], spec["max_duration"])
    loader.set_epoch(0)
    start_mib = proc_status_mib("VmRSS")
    third = max(1, (spec["limit"] or spec["corpus_cuts"]) // 3)
    at_third = at_two_thirds = None
    cuts = batches = 0
    worker_peak = 0.0
    batch = None
    t0 = time.perf_counter()
    it = iter(loader)
    for batch in it:
        cuts += len(batch["cut_ids"])
        batches += 1
        worker_peak = max(worker_peak, worker_peak_now())
        if at_third is None and cuts >= third:
            at_third = rss_now()
        if at_two_thirds is None and cuts >= 2 * third:
            at_two_thirds = rss_now()
        if spec["limit"] and cuts >= spec["limit"]:
            break
    it.close()  # shuts the workers down
    del it, batch
    gc.collect()
    seconds = time.perf_counter() - t0
    return dict(
        cuts=cuts,
        batches=batches,
        seconds=seconds,
        start_mib=start_mib,
        main_thirds_mib=[at_third[0], at_two_thirds[0]] if at_two_thirds else None,
        worker_thirds_mib=[at_third[1], at_two_thirds[1]] if at_two_thirds else None,
        main_peak_mib=proc_status_mib("VmHWM"),
        worker_peak_mib=worker_peak,
    )


def run_rss_child(folder: Path, cuts: int, workers: int, limit: int, max_duration: float) -> dict:
    spec = dict(
        dir=str(folder), corpus_cuts=cuts, workers=workers, limit=limit, max_duration=max_duration
    )
    proc = subprocess.run(
        [sys.executable, __file__, "--rss-child", json.dumps(spec)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"rss child {spec} failed:\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def memory(args: argparse.Namespace, work: Path) -> tuple[list[dict], dict]:
    lo, hi = (float(x) for x in args.rss_seconds.split(":"))
    corpora = {"small": args.rss_small, "big": args.rss_big}
    gen = {}
    for name, n in corpora.items():
        gen[name] = write_reference_corpus(work / f"ref_{n}", n, args.rss_shard_size, lo, hi)
        print(f"# reference corpus of {n:,} cuts written in {gen[name]:.1f} s", flush=True)
    rows = []
    for w in args.rss_workers:
        for name, n in corpora.items():
            limit = args.rss_cuts if name == "big" and 0 < args.rss_cuts < n else 0
            res = run_rss_child(work / f"ref_{n}", n, w, limit, args.rss_max_duration)
            res.update(corpus=name, corpus_cuts=n, workers=w, limit=limit)
            res["whole_epoch"] = limit == 0
            rows.append(res)
            print(
                f"# rss {n:,} cuts, workers={w}: {res['cuts']:,} cuts in {res['seconds']:.1f} s, "
                f"main {res['main_peak_mib']:.0f} MiB, worker {res['worker_peak_mib']:.0f} MiB",
                flush=True,
            )
    for row in rows:
        small = next(r for r in rows if r["corpus"] == "small" and r["workers"] == row["workers"])
        for key in ("main", "worker"):
            a, b = small[f"{key}_peak_mib"], row[f"{key}_peak_mib"]
            row[f"{key}_growth_pct"] = 100 * (b - a) / a if a > 0 else None
    meta = dict(
        shard_size=args.rss_shard_size,
        seconds=args.rss_seconds,
        max_duration=args.rss_max_duration,
        corpus_write_s=gen,
    )
    return rows, meta


# ------------------------------------------------------------------------- report
def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:+.1f} %"


def print_tables(thr: list[dict], thr_meta: dict, rss: list[dict], args) -> None:
    if thr:
        print(
            f"\nthroughput: {thr_meta['clips']:,} clips ({thr_meta['audio_s']:,.0f} audio-s, "
            f"{args.seconds} s each, 16 kHz mono), max_duration {args.max_duration:g} s, "
            f"median of {args.repeats} whole epochs"
        )
        print(
            "| source | workers | epoch s (min–max) | cuts/s | audio-s/s | vs files, 0 workers "
            "| cuts seen |"
        )
        print("|---|---|---|---|---|---|---|")
        for r in thr:
            label = SOURCE_LABEL[r["source"]].format(fmt=args.files_format)
            if r["source"] == "shar":
                label += f" ({thr_meta['shar_shards']} shards)"
            seen = "all, once" if r["all_cuts_once"] else f"{r['cuts']:,} — MISMATCH"
            print(
                f"| {label} | {r['workers']} | {r['epoch_s']:.2f} "
                f"({r['epoch_s_min']:.2f}–{r['epoch_s_max']:.2f}) | {r['cuts_per_s']:,.0f} | "
                f"{r['audio_s_per_s']:,.0f} | {r['vs_baseline']:.2f}× | {seen} |"
            )
    if rss:
        print(
            f"\npeak RSS: reference Shar of {args.rss_seconds} s cuts "
            f"({args.rss_shard_size:,} per shard), max_duration {args.rss_max_duration:g} s, "
            "a fresh process per row"
        )
        print(
            "| workers | process | corpus cuts | cuts streamed | s | RSS MiB at ⅓ → ⅔ of the "
            f"stream | peak RSS MiB | peak vs {args.rss_small:,}-cut corpus |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for r in rss:
            streamed = f"{r['cuts']:,}" + (
                " (whole epoch)" if r["whole_epoch"] else " (the epoch's first; stopped there)"
            )
            procs = [("main", "main")] + ([("worker", "largest worker")] if r["workers"] else [])
            for key, name in procs:
                th = r[f"{key}_thirds_mib"]
                now = "-" if th is None else f"{th[0]:.0f} → {th[1]:.0f}"
                print(
                    f"| {r['workers']} | {name} | {r['corpus_cuts']:,} | {streamed} | "
                    f"{r['seconds']:.1f} | {now} | {r[f'{key}_peak_mib']:.0f} | "
                    f"{_pct(r[f'{key}_growth_pct']) if r['corpus'] == 'big' else '-'} |"
                )


def _spin(n: int) -> float:
    t0 = time.perf_counter()
    x = 0
    for i in range(n):
        x += i
    return time.perf_counter() - t0


def parallel_capacity(n: int = 5_000_000) -> float:
    """How many times the work of one process two concurrent processes get done in the same time
    (2.0 on two free cores; less when the cores are shared or busy): context for the worker rows."""
    import multiprocessing as mp

    one = min(_spin(n) for _ in range(2))
    with mp.get_context("fork").Pool(2) as pool:
        t0 = time.perf_counter()
        pool.map(_spin, [n, n])
        two = time.perf_counter() - t0
    return 2 * one / two


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x != ""]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--work-dir", type=Path, help="corpora (reused when identical); default: temp")
    p.add_argument("--quick", action="store_true", help="tiny sizes, one repeat (the test)")
    p.add_argument("--parts", default="throughput,memory")
    p.add_argument("--clips", type=int, default=2000)
    p.add_argument("--seconds", default="2:10", help="clip length range (uniform), MIN:MAX")
    p.add_argument("--files-format", default="flac", choices=("flac", "wav"))
    p.add_argument("--shard-size", type=int, default=200, help="clips per Shar shard")
    p.add_argument("--max-duration", type=float, default=200.0, help="audio seconds per batch")
    p.add_argument("--workers", type=_ints, default=[0, 1, 2])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--rss-small", type=int, default=10_000)
    p.add_argument("--rss-big", type=int, default=1_000_000)
    p.add_argument("--rss-cuts", type=int, default=200_000, help="cuts streamed from the big corpus (0: all)")  # fmt: skip
    p.add_argument("--rss-seconds", default="0.1:0.5", help="cut length range, MIN:MAX")
    p.add_argument("--rss-shard-size", type=int, default=10_000)
    p.add_argument("--rss-max-duration", type=float, default=30.0)
    p.add_argument("--rss-workers", type=_ints, default=[0, 2])
    p.add_argument("--json", type=Path)
    p.add_argument("--rss-child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.rss_child:
        print(json.dumps(rss_child(json.loads(args.rss_child))))
        return 0
    if args.quick:
        for k, v in QUICK.items():
            setattr(args, k, v)
    import torch

    torch.set_num_threads(1)
    parts = set(args.parts.split(","))
    t_start = time.perf_counter()
    load_before = os.getloadavg()
    capacity = parallel_capacity()
    tmp = None
    if args.work_dir is None:
        tmp = tempfile.mkdtemp(prefix="data_stream_bench_")
        args.work_dir = Path(tmp)
    try:
        thr, thr_meta = throughput(args, args.work_dir) if "throughput" in parts else ([], {})
        rss, rss_meta = memory(args, args.work_dir) if "memory" in parts else ([], {})
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    wall = time.perf_counter() - t_start
    meta = dict(
        machine=f"{cpu_model()}, {os.cpu_count()} CPUs",
        load_avg_before=load_before,
        load_avg_after=os.getloadavg(),
        parallel_capacity=capacity,
        wall_s=wall,
        command=" ".join(sys.argv),
        throughput=thr_meta,
        memory=rss_meta,
    )
    print_tables(thr, thr_meta, rss, args)
    print(
        f"\n{meta['machine']}; load average {load_before[0]:.1f} before, "
        f"{meta['load_avg_after'][0]:.1f} after; 2 concurrent CPU-bound processes did "
        f"{capacity:.2f}× the work of one; wall {wall:.0f} s"
    )
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "throughput": thr, "memory": rss}, indent=1))
    bad = [r for r in thr if not r["all_cuts_once"]]
    bad += [r for r in rss if r["whole_epoch"] and r["cuts"] != r["corpus_cuts"]]
    if bad:
        print(f"ERROR: {len(bad)} configuration(s) did not deliver every cut exactly once")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
