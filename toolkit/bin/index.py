"""Index a folder of audio for text search: ``toolkit-index --model M DIR -o INDEX``.

Embeds every audio file under ``DIR`` (recursively) into the model's joint audio-text space and
stores the vectors in the index directory ``INDEX`` (:mod:`toolkit.index`). Incremental:
re-running embeds only new or changed files (path + size + mtime) and drops files that are gone;
unreadable files are skipped, listed with their reason and retried when they change. Search it
with ``toolkit-search INDEX "a dog barking in the rain"``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from toolkit.audio import AudioLoadError
from toolkit.bin.common import run_cli
from toolkit.config import ConfigError
from toolkit.utils.logging import setup_logging


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", "-m", required=True, help="run dir, exported model dir or .pt")
    p.add_argument("--output", "-o", required=True, help="index directory (created or updated)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-files", type=int, default=32, help="files embedded together")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("folder", help="folder of audio files (searched recursively)")
    args = p.parse_args(argv)
    setup_logging(None)
    from toolkit.api import load
    from toolkit.index import AudioIndex

    if not Path(args.folder).is_dir():
        raise ConfigError(f"{args.folder}: not a folder")
    model = load(args.model, device=args.device)
    if not model.has_joint_space:
        raise ConfigError(
            f"--model {args.model}: its {model._objective_name()} objective has no joint "
            "audio-text space, so a text query cannot search its embeddings"
        )
    dim = int(model.embed_text(["probe"]).shape[1])
    meta = {"model": str(Path(args.model).resolve()), "space": "joint"}
    index = AudioIndex.create(args.output, dim, model.model_id, meta, exist_ok=True)

    def embed(paths: list[Path]) -> tuple[np.ndarray, dict[str, str], np.ndarray]:
        audio, failed, durations = [], {}, []
        for path in paths:
            try:
                audio.append(model.load_audio(path))
                durations.append(len(audio[-1]) / model.sampling_rate)
            except AudioLoadError as e:
                failed[str(path)] = str(e)
        if not audio:
            return np.zeros((0, dim), np.float32), failed, np.zeros(0)
        vecs = model.embed_audio(audio, model.sampling_rate).numpy()
        return vecs.astype(np.float32), failed, np.asarray(durations)

    report = index.update(
        args.folder, embed, batch_files=args.batch_files, progress=not args.no_progress
    )
    print(
        f"index {args.output}: {len(index)} files ({report.added} added, {report.updated} "
        f"updated, {report.removed} removed, {report.unchanged} unchanged, "
        f"{len(report.skipped)} skipped)"
    )
    for path, why in report.skipped.items():
        print(f"  skipped {path}: {why}", file=sys.stderr)
    return 0


def cli() -> None:
    run_cli(main)


if __name__ == "__main__":
    cli()
