"""Export embeddings of audio files or cuts with a trained run's frozen encoder.

``python -m toolkit.bin.extract --run-dir exp/x (--files a.wav b.flac | --list files.txt |
--cuts cuts.jsonl.gz) --out emb_dir [--frames] [--batch-duration 200] [--device cpu]``

Writes ``ids.txt`` + ``pooled.npy`` (N, D) float32 and, with ``--frames``, ``frames.npy``,
``frame_times.npy`` and ``frame_offsets.npy``, plus ``meta.json`` (see docs/extract.md;
:func:`toolkit.inference.load_embeddings` reads them back). Unreadable audio stops the run with
an error naming the file, or with ``--skip-errors`` is left out and listed in ``meta.json``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from toolkit.audio import AudioLoadError, read_audio
from toolkit.bin.common import run_cli
from toolkit.config import ConfigError
from toolkit.inference import EmbeddingWriter, cut_sources, load_encoder
from toolkit.utils.logging import setup_logging

log = logging.getLogger("toolkit.extract")
OUTPUTS = ("ids.txt", "pooled.npy", "frames.npy", "frame_times.npy", "frame_offsets.npy")


def read_list(path: Path) -> list[str]:
    """Paths from a list file: one per line; blank lines and ``#`` comments are ignored."""
    if not path.is_file():
        raise ConfigError(f"--list: {path} not found")
    lines = (ln.strip() for ln in path.read_text(encoding="utf-8").splitlines())
    return [ln for ln in lines if ln and not ln.startswith("#")]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run-dir", required=True, help="training run dir (or a .pt file in one)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--files", nargs="+", help="audio files")
    src.add_argument("--list", help="text file with one audio path per line")
    src.add_argument("--cuts", help="lhotse cut manifest (jsonl.gz)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--frames", action="store_true", help="also write frame-level embeddings")
    p.add_argument("--frames-dtype", choices=("float32", "float16"), default="float32")
    p.add_argument("--batch-duration", type=float, default=200.0, help="seconds per batch")
    p.add_argument("--device", default="cpu")
    p.add_argument("--checkpoint", default=None, help="default: model.pt or newest checkpoint")
    p.add_argument("--window", type=float, default=None, help="s; default eval.max_clip_duration")
    p.add_argument("--hop", type=float, default=None, help="s; default window - min(1, window/2)")
    p.add_argument("--num-workers", type=int, default=0, help="audio reading threads")
    p.add_argument("--skip-errors", action="store_true", help="leave unreadable audio out")
    p.add_argument("--one-by-one", action="store_true", help="no padded batches")
    p.add_argument("--pad-end", action="store_true", help="zero-pad so frames reach clip ends")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("overrides", nargs="*", help="config overrides, e.g. frontend.stats_file=x.pt")
    args = p.parse_args(argv)
    out = Path(args.out)
    setup_logging(None)
    existing = [n for n in OUTPUTS if (out / n).exists()]
    if existing and not args.overwrite:
        raise ConfigError(f"--out: {out} already holds {existing[0]}; pass --overwrite")

    if args.cuts:
        from lhotse import CutSet

        if not Path(args.cuts).is_file():
            raise ConfigError(f"--cuts: {args.cuts} not found")
        cuts = CutSet.from_file(args.cuts)
        total = None if cuts.is_lazy else len(cuts)
        sources = cut_sources(cuts)
    else:
        paths = args.files if args.files else read_list(Path(args.list))
        sources = ((str(f), lambda f=f: read_audio(f)) for f in paths)
        total = len(paths)

    enc = load_encoder(
        args.run_dir,
        args.device,
        args.checkpoint,
        args.window,
        args.hop,
        not args.one_by_one,
        args.overrides,
        args.pad_end,
    )
    writer = EmbeddingWriter(out, enc.output_dim, args.frames, args.frames_dtype)
    failed: dict[str, str] = {}
    seconds, frames, start = 0.0, 0, time.perf_counter()
    stream = enc.iter_embeddings(
        sources,
        args.batch_duration,
        not args.no_progress,
        "skip" if args.skip_errors else "raise",
        args.num_workers,
        total,
        "extract",
    )
    try:
        for cid, item in stream:
            if isinstance(item, AudioLoadError):
                failed[cid] = str(item)
                log.warning("skipped: %s", item)
                continue
            writer.add(item)
            seconds += item.duration
            frames += len(item.frames)
    except AudioLoadError as e:
        writer.abort()
        print(f"error: {e}", file=sys.stderr)
        print("(pass --skip-errors to leave unreadable audio out)", file=sys.stderr)
        return 1
    n = writer.pooled.rows
    elapsed = time.perf_counter() - start
    meta = {
        "run_dir": enc.run_dir,
        "checkpoint": enc.checkpoint,
        "sampling_rate": enc.sampling_rate,
        "frame_rate": enc.frame_rate,
        "frame_offset": enc.frame_offset,
        "pad_end": enc.pad_end,
        "output_dim": enc.output_dim,
        "window_seconds": enc.window_seconds,
        "hop_seconds": enc.hop_seconds,
        "num_items": n,
        "num_failed": len(failed),
        "failed": failed,
        "frames": bool(args.frames),
        "frames_dtype": args.frames_dtype if args.frames else None,
        "num_frames": frames,
        "audio_seconds": round(seconds, 3),
        "wall_seconds": round(elapsed, 3),
    }
    writer.close(meta)
    if n == 0:
        print(
            f"error: no audio could be read ({len(failed)} failed; see meta.json)", file=sys.stderr
        )
        return 1
    frames_line = f"\n  {out / 'frames.npy'}: ({frames}, {enc.output_dim}) {args.frames_dtype}"
    print(
        f"extracted {n} clips ({seconds:.1f} s of audio, {frames} frames) in {elapsed:.1f} s; "
        f"{len(failed)} unreadable{' (see meta.json)' if failed else ''}\n"
        f"  {out / 'pooled.npy'}: ({n}, {enc.output_dim}) float32, rows follow {out / 'ids.txt'}"
        + (frames_line if args.frames else "")
    )
    return 0


def cli() -> None:
    run_cli(main)


if __name__ == "__main__":
    cli()
