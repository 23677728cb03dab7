#!/usr/bin/env python3
"""Search latency of ``toolkit.index.AudioIndex``: exact cosine top-k over a synthetic index.

For each ``--dims`` D and ``--sizes`` N, writes an index of N random unit vectors (no audio:
``AudioIndex.create`` + ``AudioIndex._append``) into a temporary directory, opens it afresh
(``vectors.npy`` memory-mapped, as a search CLI would) and times ``search`` with k = ``--k``:
one query (median of ``--repeats`` calls after ``--warmup`` untimed ones) and ``--batch``
queries in one call (median of ``--repeats`` // 2 calls), per backend (``numpy``; ``faiss``
when importable — its ``IndexFlatIP`` is built during the warm-up, not timed). Prints a
markdown table and, with ``--json``, writes the rows. Both backends must return the same hits
(checked; exits 1 otherwise).

    python bench/search_latency.py [--sizes 100000] [--dims 512,1024] [--json out.json]
    python bench/search_latency.py --quick      # seconds; what test/test_index.py runs
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from toolkit.index import FAISS_AUTO_MIN_ITEMS, AudioIndex, faiss_available  # noqa: E402


def build(root: Path, n: int, dim: int, seed: int = 0) -> float:
    """Write an index of ``n`` random unit vectors of ``dim``; returns the seconds it took."""
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    index = AudioIndex.create(root, dim, "bench-random")
    step = 50_000
    for a in range(0, n, step):
        m = min(step, n - a)
        vec = rng.standard_normal((m, dim), dtype=np.float32)
        index._append([f"/bench/{i:09d}.wav" for i in range(a, a + m)], vec)
    return time.perf_counter() - t0


def timed(fn, repeats: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def measure(
    index: AudioIndex,
    args: argparse.Namespace,
    backends: list[str],
    build_s: float,
    rows: list[dict],
) -> bool:
    """Time one index with each backend, appending to ``rows``; True if the backends disagree."""
    n, dim = len(index), index.dim
    rng = np.random.default_rng(1)
    q = rng.standard_normal((args.batch, dim), dtype=np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    reference, failed = None, False
    for backend in backends:
        hits = index.search(q, k=args.k, backend=backend)  # also builds faiss
        got = [[(h.path, h.score) for h in row] for row in hits]
        if reference is None:
            reference = got
        elif got != reference:
            print(f"MISMATCH: {backend} hits differ from {backends[0]}", file=sys.stderr)
            failed = True
        one = timed(
            lambda b=backend: index.search(q[0], k=args.k, backend=b), args.repeats, args.warmup
        )
        many = timed(
            lambda b=backend: index.search(q, k=args.k, backend=b), max(1, args.repeats // 2), 1
        )
        for nq, ts in ((1, one), (args.batch, many)):
            med = statistics.median(ts)
            rows.append(
                {
                    "backend": backend,
                    "n": n,
                    "dim": dim,
                    "queries": nq,
                    "median_ms": round(med, 2),
                    "min_ms": round(min(ts), 2),
                    "ms_per_query": round(med / nq, 2),
                    "build_s": round(build_s, 2),
                }
            )

    return failed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="100000", help="comma-separated N")
    ap.add_argument("--dims", default="512,1024", help="comma-separated D")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--backends", default="numpy,faiss", help="faiss is dropped if missing")
    ap.add_argument("--work-dir", type=Path, default=None, help="default: a temporary dir")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--quick", action="store_true", help="N=2000, D=64, 5 repeats")
    args = ap.parse_args(argv)
    if args.quick:
        args.sizes, args.dims, args.repeats, args.warmup = "2000", "64", 5, 1
    sizes = [int(s) for s in args.sizes.split(",")]
    dims = [int(d) for d in args.dims.split(",")]
    backends = [b for b in args.backends.split(",") if b != "faiss" or faiss_available()]

    rows: list[dict] = []
    failed = False
    with tempfile.TemporaryDirectory(dir=args.work_dir) as tmp:
        for dim in dims:
            for n in sizes:
                root = Path(tmp) / f"index_{n}_{dim}"
                build_s = build(root, n, dim)
                failed |= measure(AudioIndex.open(root), args, backends, build_s, rows)

    print("| backend | N | D | queries / call | median ms | min ms | ms / query |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['backend']} | {r['n']:,} | {r['dim']} | {r['queries']} | {r['median_ms']:.1f} "
            f"| {r['min_ms']:.1f} | {r['ms_per_query']:.1f} |"
        )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load {load:.2f}; "
        f"faiss {'installed' if faiss_available() else 'not installed'}; "
        f"auto uses faiss from N = {FAISS_AUTO_MIN_ITEMS:,}"
    )
    if args.json:
        meta = {"cpus": os.cpu_count(), "load": load, "faiss": faiss_available()}
        args.json.write_text(json.dumps({"rows": rows, "meta": meta}, indent=1) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
