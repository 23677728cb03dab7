#!/usr/bin/env python3
"""CPU cost of loading one training clip, by how the Shar shards store the audio.

The training loader (``toolkit.data.dataset.CaptionDataset``) decodes each clip, crops it to
``--crop`` seconds, resamples it to 16 kHz and averages its channels, in the data-loader
workers. At the issue-7 target of 20,000 audio-seconds/s per GPU (2,000 10-s clips/s) that CPU
cost decides how many cores keep one GPU fed. For each source format (rate, channels, length)
this writes ``--clips`` synthetic FLAC files, exports them as Lhotse Shar twice — the original
audio and at the training rate (``export_shar(..., sampling_rate=16000)``: mono, 16 kHz) — and
times ``load_mono`` of a random crop for every cut read back from each Shar, on one thread.

    python bench/clip_loading.py --work-dir /tmp/clip_bench [--clips 24] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

FORMATS = ((16000, 1, 10.0), (48000, 2, 10.0), (44100, 2, 30.0), (32000, 1, 10.0))
TARGET_CLIPS_PER_S = 2000  # 20,000 audio-s/s of 10-s clips


def write_corpus(folder: Path, sr: int, channels: int, seconds: float, n: int) -> Path:
    """``n`` noisy tones as FLAC + a caption manifest; returns the manifest path."""
    from lhotse import CutSet

    from toolkit.data.cuts import make_caption_cut

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(sr + channels)
    t = np.arange(int(seconds * sr)) / sr
    cuts = []
    for i in range(n):
        x = np.stack(
            [0.3 * np.sin(2 * np.pi * (200 + 50 * i + 100 * c) * t) for c in range(channels)], 1
        )
        x += 0.01 * rng.standard_normal(x.shape)
        path = folder / f"clip{i:04d}.flac"
        sf.write(path, x.astype(np.float32), sr)
        cuts.append(make_caption_cut(path, f"c{i:04d}", ["a tone"], ["short"], "sound", "bench"))
    manifest = folder / "cuts.jsonl.gz"
    CutSet.from_cuts(cuts).to_file(manifest)
    return manifest


def time_loading(shar_dir: Path, crop: float, repeats: int) -> list[float]:
    """Seconds per clip of ``load_mono(random crop)``, one value per repeat (median over clips)."""
    from lhotse import CutSet

    from toolkit.data.dataset import load_mono

    cuts = list(CutSet.from_shar(in_dir=shar_dir))
    rng = np.random.default_rng(0)
    load_mono(cuts[0].truncate(duration=min(crop, cuts[0].duration)), 16000)  # warm-up
    out = []
    for _ in range(repeats):
        per_clip = []
        for cut in cuts:
            offset = float(rng.uniform(0, max(cut.duration - crop, 0.0)))
            c = cut.truncate(offset=offset, duration=min(crop, cut.duration - offset))
            t0 = time.perf_counter()
            load_mono(c, 16000)
            per_clip.append(time.perf_counter() - t0)
        out.append(statistics.median(per_clip))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--work-dir", type=Path, required=True)
    p.add_argument("--clips", type=int, default=24, help="clips per source format")
    p.add_argument("--crop", type=float, default=10.0, help="training crop, seconds")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--formats", help="e.g. 48000x2x10,16000x1x10 (rate x channels x seconds)")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    from toolkit.data.aggregate.mix import export_shar

    formats = FORMATS
    if args.formats:
        formats = tuple(
            (int(r), int(c), float(s))
            for r, c, s in (f.split("x") for f in args.formats.split(","))
        )
    rows = []
    for sr, ch, seconds in formats:
        base = args.work_dir / f"{sr}_{ch}ch_{seconds:g}s"
        manifest = write_corpus(base / "audio", sr, ch, seconds, args.clips)
        for label, rate in (("original", None), ("16 kHz mono", 16000)):
            shar = base / ("shar_orig" if rate is None else "shar_16k")
            export_shar(manifest, shar, "flac", shard_size=1000, sampling_rate=rate)
            med = statistics.median(time_loading(shar, args.crop, args.repeats))
            rows.append(
                {
                    "source": f"{sr / 1000:g} kHz, {ch} ch, {seconds:g} s",
                    "shar_audio": label,
                    "ms_per_clip": 1000 * med,
                    "clips_per_s_per_core": 1 / med,
                    "cores_for_target": TARGET_CLIPS_PER_S * med,
                }
            )
            r = rows[-1]
            print(f"# {r['source']} / {label}: {r['ms_per_clip']:.2f} ms per clip", flush=True)
    print(
        f"one thread; {args.crop:g}-s crops resampled to 16 kHz mono; target {TARGET_CLIPS_PER_S} clips/s"
    )
    print("| source audio | Shar audio | ms / clip | clips/s per core | cores for 2,000 clips/s |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['source']} | {r['shar_audio']} | {r['ms_per_clip']:.2f} | "
            f"{r['clips_per_s_per_core']:.0f} | {r['cores_for_target']:.1f} |"
        )
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "command": " ".join(sys.argv)}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
