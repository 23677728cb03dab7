"""Benchmark: prepare a large synthetic corpus listing; report clips/s and peak memory.

Writes a CSV listing of ``--clips`` rows (default 100,000) pointing at audio files, then runs
``python -m toolkit.bin.prepare listing`` on it in a child process for each size in ``--sizes``
and reports wall time, clips/s and the child's peak resident memory (ru_maxrss). Memory should
stay flat as the corpus grows (items are streamed in parts, cuts are written part by part).

The audio files are hard links to a handful of short real files by default (creating 100k
distinct files is slow and the prepare step reads only headers anyway); ``--distinct-files``
writes one real file per clip instead.

    python bench/prepare_scale.py --work-dir /tmp/prep_bench --sizes 10000,100000 --num-jobs 2
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf


def make_listing(root: Path, clips: int, distinct: bool, seed: int = 0) -> Path:
    """``root/listing.csv`` with ``clips`` rows (+ the audio files) unless already there."""
    listing = root / f"listing_{clips}.csv"
    if listing.is_file():
        return listing
    rng = np.random.default_rng(seed)
    audio = root / "audio"
    audio.mkdir(parents=True, exist_ok=True)
    bases = []
    for k, (sr, ch) in enumerate([(16000, 1), (44100, 2), (22050, 1), (48000, 2)]):
        path = root / f"base{k}.flac"
        sf.write(path, 0.1 * rng.standard_normal((int(sr * (1 + k)), ch)), sr)
        bases.append(path)
    words = ["dog", "rain", "engine", "piano", "voice", "bird", "siren", "wind", "crowd", "bell"]
    tmp = listing.with_suffix(".tmp")
    with open(tmp, "w") as f:
        f.write("path,caption,label,split\n")
        for i in range(clips):
            sub = audio / f"{i // 1000:04d}"
            path = sub / f"clip{i:07d}.flac"
            if not path.exists():
                sub.mkdir(exist_ok=True)
                if distinct:
                    sf.write(path, 0.1 * rng.standard_normal(16000), 16000)
                else:
                    os.link(bases[i % len(bases)], path)
            a, b = words[i % 10], words[(i * 7 + 3) % 10]
            split = "test" if i % 50 == 0 else "dev" if i % 50 == 1 else "train"
            f.write(f"{path.relative_to(root)},a {a} and a {b}|{a} {b},{a},{split}\n")
    tmp.rename(listing)
    return listing


_WRAPPER = (
    "import resource, subprocess, sys\n"
    "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, "
    "stderr=subprocess.DEVNULL)\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
)


def run_prepare(root: Path, listing: Path, out: Path, num_jobs: int) -> dict:
    """Run the prepare CLI under a fresh wrapper process; wall seconds and the peak RSS (MiB)
    of the largest process of that run (the prepare process or one of its workers)."""
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "toolkit.bin.prepare", "listing", "--corpus-dir", str(root),
           "--output-dir", str(out), "--listing", str(listing), "--num-jobs", str(num_jobs)]  # fmt: skip
    t0 = time.perf_counter()
    res = subprocess.run(
        [sys.executable, "-c", _WRAPPER, *cmd], check=True, capture_output=True, text=True
    )
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "peak_rss_mib": int(res.stdout.split()[-1]) / 1024.0}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--work-dir", type=Path, default=Path("/tmp/prep_bench"))
    p.add_argument("--sizes", default="10000,100000")
    p.add_argument("--num-jobs", type=int, default=2)
    p.add_argument("--distinct-files", action="store_true")
    args = p.parse_args()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    sizes = [int(s) for s in args.sizes.split(",")]
    print("| clips | num_jobs | wall s | clips/s | peak RSS MiB (largest process) |")
    print("|---|---|---|---|---|")
    for n in sorted(sizes):
        t0 = time.perf_counter()
        listing = make_listing(args.work_dir, n, args.distinct_files)
        made = time.perf_counter() - t0
        res = run_prepare(args.work_dir, listing, args.work_dir / f"out_{n}", args.num_jobs)
        print(
            f"| {n} | {args.num_jobs} | {res['wall_s']:.1f} | {n / res['wall_s']:.0f} | "
            f"{res['peak_rss_mib']:.0f} |  (listing written in {made:.1f} s)",
            flush=True,
        )


if __name__ == "__main__":
    main()
