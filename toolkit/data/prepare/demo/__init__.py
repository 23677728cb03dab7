"""Built-in demo corpus: synthetic speech, music, sound-event and mixed clips with captions.

``prepare_demo`` writes ``corpus_dir/{train,dev,test}/<cut_id>.flac`` (16 kHz mono) and
``output_dir/demo_cuts_{train,dev,test}.jsonl.gz`` following the contract of
:mod:`toolkit.data.cuts`. Everything is a deterministic function of the seed: every clip has its
own RNG seeded with ``(seed, split, index)``, so results do not depend on ``num_jobs``.

Usage::

    python -m toolkit.data.prepare.demo --corpus-dir data/demo --output-dir data/manifests
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import multiprocessing
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf
from lhotse import CutSet, MonoCut

from toolkit.data.cuts import make_caption_cut, reject_empty_captions
from toolkit.data.prepare.common import atomic_write_text, register_corpus
from toolkit.data.prepare.demo import music as demo_music
from toolkit.data.prepare.demo import sound as demo_sound
from toolkit.data.prepare.demo import speech as demo_speech
from toolkit.data.prepare.demo.captions import (
    music_captions,
    select_captions,
    speech_captions,
)
from toolkit.data.prepare.demo.captions_sound import mix_captions, sound_captions
from toolkit.data.prepare.demo.synth import (
    MAX_DUR,
    MIN_DUR,
    SR,
    add_at,
    fit_length,
    normalize_peak,
    num_samples,
    random_peak_db,
    rms,
)
from toolkit.utils.malloc import keep_freed_memory

logger = logging.getLogger(__name__)

SOURCE = "demo"
SPLITS = ("train", "dev", "test")
SPLIT_CODE = {"train": 0, "dev": 1, "test": 2}
DOMAIN_SHARE = (("speech", 0.35), ("music", 0.35), ("sound", 0.20), ("mix", 0.10))
MIX_KINDS = (("speech", "music"), ("speech", "sound"), ("music", "sound"))


def manifest_path(output_dir: Path | str, split: str) -> Path:
    """Path of the demo manifest of ``split``."""
    return Path(output_dir) / f"demo_cuts_{split}.jsonl.gz"


PARAMS_FILE = "demo_params.json"  # next to the manifests: the sizes and seed they were made with


def _check_same_params(output_dir: Path, wanted: dict[str, int]) -> None:
    """Existing manifests are reused only for the sizes and seed they were made with; otherwise a
    ValueError says what is there and how to regenerate (manifests of older versions, written
    without :data:`PARAMS_FILE`, are reused as before)."""
    stamp = output_dir / PARAMS_FILE
    if not stamp.is_file():
        return
    have = json.loads(stamp.read_text())
    if have != wanted:

        def show(params: dict[str, int]) -> str:
            return ", ".join(f"{k}={v}" for k, v in params.items())

        raise ValueError(
            f"{output_dir} holds a demo corpus made with {show(have)}; asked for {show(wanted)}. "
            "Pass --force (egs/demo/run.sh: --force true, which also redoes the later stages) "
            "to regenerate it, or use another --output-dir"
        )


def _domain_counts(n: int) -> dict[str, int]:
    """Split ``n`` clips over the domains by :data:`DOMAIN_SHARE` (largest remainder)."""
    raw = [(d, n * share) for d, share in DOMAIN_SHARE]
    counts = {d: int(x) for d, x in raw}
    order = sorted(raw, key=lambda dx: dx[1] - int(dx[1]), reverse=True)
    for d, _ in order[: n - sum(counts.values())]:
        counts[d] += 1
    return counts


def _balanced(combos: Sequence, n: int, rng: np.random.Generator) -> list:
    """``n`` items cycling through shuffled copies of ``combos`` (exact joint class balance)."""
    out: list = []
    while len(out) < n:
        out.extend(combos[i] for i in rng.permutation(len(combos)))
    return out[:n]


def plan_split(split: str, n: int, seed: int) -> list[dict]:
    """Deterministic per-clip plan (domain and probe attributes) for one split."""
    rng = np.random.default_rng([seed, SPLIT_CODE[split], 0])
    counts = _domain_counts(n)
    combos = {
        "speech": list(
            itertools.product(demo_speech.LANGUAGES, demo_speech.RATES, demo_speech.GENDERS)
        ),
        "music": list(
            itertools.product(demo_music.INSTRUMENTS, demo_music.MODES, demo_music.TEMPOS)
        ),
        # every event class appears len(COUNTS) times per cycle; counts balance within countables
        "sound": [(e, c) for e in demo_sound.COUNTABLE for c in demo_sound.COUNTS]
        + [(e, None) for e in demo_sound.CONTINUOUS for _ in demo_sound.COUNTS],
        "mix": list(MIX_KINDS),
    }
    attrs = {d: _balanced(combos[d], counts[d], rng) for d, _ in DOMAIN_SHARE}
    domains = [d for d, _ in DOMAIN_SHARE for _ in range(counts[d])]
    domains = [domains[i] for i in rng.permutation(n)]
    cursor = dict.fromkeys(counts, 0)
    plan = []
    for idx, domain in enumerate(domains):
        plan.append(
            {"split": split, "index": idx, "domain": domain, "attrs": attrs[domain][cursor[domain]]}
        )
        cursor[domain] += 1
    return plan


def _random_component(domain: str, split: str, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """A random speech, music or sound clip used as one layer of a mixture."""
    if domain == "speech":
        attrs = [demo_speech.LANGUAGES, demo_speech.RATES, demo_speech.GENDERS]
        return demo_speech.synth_speech(rng, *[str(rng.choice(a)) for a in attrs], split)
    if domain == "music":
        attrs = [demo_music.INSTRUMENTS, demo_music.MODES, demo_music.TEMPOS]
        return demo_music.synth_music(rng, *[str(rng.choice(a)) for a in attrs])
    event = str(rng.choice(demo_sound.EVENTS))
    count = str(rng.choice(demo_sound.COUNTS)) if event in demo_sound.COUNTABLE else None
    return demo_sound.synth_sound(rng, event, count)


def _mixture(kind: tuple[str, str], split: str, rng: np.random.Generator):
    """Foreground + quieter background layer; returns audio and (fg_meta, bg_meta)."""
    fg, fg_meta = _random_component(kind[0], split, rng)
    bg, bg_meta = _random_component(kind[1], split, rng)
    rel_db = rng.uniform(-16.0, -8.0) if kind[1] == "music" else rng.uniform(-8.0, 0.0)
    bg = bg * rms(fg) / rms(bg) * 10.0 ** (rel_db / 20.0)
    out = np.zeros(max(len(fg), len(bg)))
    out[: len(fg)] += fg
    add_at(out, bg, int(rng.integers(0, len(out) - len(bg) + 1)))
    return out, fg_meta, bg_meta


def generate_clip(task: dict, seed: int, audio_dir: Path) -> MonoCut:
    """Synthesise, write and describe one planned clip; returns its cut."""
    split, idx, domain, attrs = task["split"], task["index"], task["domain"], task["attrs"]
    rng = np.random.default_rng([seed, SPLIT_CODE[split], 1, idx])
    labels: dict[str, str] = {}
    if domain == "speech":
        audio, meta = demo_speech.synth_speech(rng, *attrs, split)
        options = speech_captions(meta, rng)
        labels = dict(zip(("speech_language", "speech_rate", "speech_gender"), attrs, strict=True))
    elif domain == "music":
        audio, meta = demo_music.synth_music(rng, *attrs)
        options = music_captions(meta, rng)
        labels = dict(zip(("music_instrument", "music_mode", "music_tempo"), attrs, strict=True))
    elif domain == "sound":
        audio, meta = demo_sound.synth_sound(rng, *attrs)
        options = sound_captions(meta, rng)
        labels = {"sound_event": attrs[0]}
        if attrs[1] is not None:
            labels["sound_count"] = attrs[1]
    else:
        audio, fg_meta, bg_meta = _mixture(attrs, split, rng)
        options = mix_captions(attrs[0], fg_meta, attrs[1], bg_meta, rng)
    audio = fit_length(audio, min(num_samples(MAX_DUR), max(num_samples(MIN_DUR), len(audio))))
    audio = normalize_peak(audio, random_peak_db(rng))
    captions, styles = select_captions(options, rng)
    cut_id = f"{SOURCE}-{split}-{idx:06d}"
    path = audio_dir / split / f"{cut_id}.flac"
    sf.write(path, audio.astype(np.float32), SR, format="FLAC", subtype="PCM_16")
    return make_caption_cut(path, cut_id, captions, styles, domain, SOURCE, labels)


def _generate_star(args: tuple[dict, int, Path]) -> MonoCut:
    return generate_clip(*args)


def _zero_gzip_mtime(path: Path) -> None:
    """Zero the gzip header's timestamp so identical content gives identical bytes."""
    with open(path, "r+b") as f:
        if f.read(2) == b"\x1f\x8b":
            f.seek(4)
            f.write(b"\x00\x00\x00\x00")


@register_corpus("demo")
def prepare_demo(
    corpus_dir: Path | str,
    output_dir: Path | str,
    num_train: int = 2000,
    num_dev: int = 300,
    num_test: int = 300,
    seed: int = 0,
    num_jobs: int = 2,
    force: bool = False,
) -> dict[str, CutSet]:
    """Generate the demo corpus and its manifests; returns ``{split: CutSet}``.

    If all three manifests already exist (and ``force`` is False) they are loaded and returned
    without regenerating anything; a ValueError says so if they were made with other sizes or
    another seed (``demo_params.json`` beside them records both).
    """
    corpus_dir, output_dir = Path(corpus_dir).resolve(), Path(output_dir)
    paths = {split: manifest_path(output_dir, split) for split in SPLITS}
    params = {"num_train": num_train, "num_dev": num_dev, "num_test": num_test, "seed": seed}
    if not force and all(p.is_file() for p in paths.values()):
        _check_same_params(output_dir, params)
        logger.info("Demo manifests exist in %s; loading them", output_dir)
        return {split: CutSet.from_file(p) for split, p in paths.items()}
    if not demo_speech.espeak_available():
        raise RuntimeError("espeak-ng is required to generate the demo corpus")
    sizes = {"train": num_train, "dev": num_dev, "test": num_test}
    if seed < 0 or min(sizes.values()) < 0:
        raise ValueError("seed and split sizes must be non-negative")
    output_dir.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        (corpus_dir / split).mkdir(parents=True, exist_ok=True)
    tasks = [(t, seed, corpus_dir) for s in SPLITS for t in plan_split(s, sizes[s], seed)]

    start = time.perf_counter()
    if num_jobs > 1 and len(tasks) > 1:
        ctx = "fork" if "fork" in multiprocessing.get_all_start_methods() else None
        with multiprocessing.get_context(ctx).Pool(num_jobs) as pool:
            cuts = list(pool.imap(_generate_star, tasks, chunksize=4))
    else:
        cuts = [_generate_star(t) for t in tasks]
    logger.info("Generated %d demo clips in %.1f s", len(cuts), time.perf_counter() - start)

    result = {}
    for split in SPLITS:
        cutset, _ = reject_empty_captions(c for c in cuts if c.id.split("-")[1] == split)
        tmp = paths[split].with_name(f".tmp.{paths[split].name}")
        cutset.to_file(tmp)
        _zero_gzip_mtime(tmp)
        os.replace(tmp, paths[split])
        result[split] = cutset
    atomic_write_text(output_dir / PARAMS_FILE, json.dumps(params) + "\n")
    return result


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus-dir", type=Path, required=True, help="where audio is written")
    parser.add_argument("--output-dir", type=Path, required=True, help="where manifests go")
    parser.add_argument("--num-train", type=int, default=2000)
    parser.add_argument("--num-dev", type=int, default=300)
    parser.add_argument("--num-test", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-jobs", type=int, default=2)
    parser.add_argument("--force", action="store_true", help="regenerate existing manifests")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    keep_freed_memory()  # as every toolkit CLI: large arrays reuse freed memory
    start = time.perf_counter()
    try:
        cutsets = prepare_demo(
            args.corpus_dir,
            args.output_dir,
            num_train=args.num_train,
            num_dev=args.num_dev,
            num_test=args.num_test,
            seed=args.seed,
            num_jobs=args.num_jobs,
            force=args.force,
        )
    except ValueError as e:  # wrong sizes/seed for existing manifests, negative sizes
        parser.exit(2, f"{parser.prog}: error: {e}\n")
    sizes = ", ".join(f"{s}={len(c)}" for s, c in cutsets.items())
    logger.info("Demo corpus ready (%s) in %.1f s", sizes, time.perf_counter() - start)
