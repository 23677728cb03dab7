"""Stage 5: evaluate a pretrained model with its encoder frozen, beside two baselines.

``python -m toolkit.bin.evaluate --exp-dir exp/demo [-c extra.yaml] [k=v ...]`` reads
``exp/demo/config.yaml`` (plus any ``-c`` files merged over it)
and ``model.pt``, extracts embeddings of the train/dev/test cuts, runs the ``eval.evaluators``
(linear probes, retrieval, zero-shot) for the pretrained model, the same architecture untrained
(``random_init``) and raw log-mel mean+std statistics (``logmel_stats``), and writes
``results.md``, ``results.csv``, ``plot_metrics.png`` and ``plot_loss.png`` to ``--out-dir``
(default ``<exp-dir>/eval``).

Evaluators declare what they need beyond pooled vectors in a class attribute ``needs``:
``"frames"`` (per-clip frame-level encoder outputs, float16, every split) and ``"generated"``
(the model's own captions for the evaluator's ``split``, generated with its ``generation``
options; only models whose objective has ``generate``). Nothing is extracted that no configured
evaluator needs. Constructor arguments named in :data:`EVALUATOR_CONTEXT_ARGS` (the run's
``tokenizer``) are supplied by code, not YAML; an evaluator's optional ``finish()`` returns rows
after every model was evaluated (e.g. a text-only reference such as ``most_frequent_caption``).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import torch
from lhotse import CutSet

from toolkit.bin.common import run_cli
from toolkit.config import ConfigError, deep_merge, load_config
from toolkit.data.leakage import find_leaks
from toolkit.data.sources import open_cuts, source_paths
from toolkit.evaluate.embeddings import EmbeddingSet, extract_models
from toolkit.evaluate.folds import average_rounds, fold_splits
from toolkit.evaluate.pooling import mean_std_pool
from toolkit.evaluate.report import data_counts, read_scalars_csv, write_report
from toolkit.layers import masked_mean
from toolkit.model import AudioModel, build_model
from toolkit.registry import EVALUATORS, import_plugins
from toolkit.runs import Run, open_run
from toolkit.schema import check_top_level, data_config, eval_config
from toolkit.utils.logging import setup_logging

log = logging.getLogger("toolkit.evaluate")
# Evaluator constructor arguments that code (not YAML) supplies.
EVALUATOR_CONTEXT_ARGS = ("tokenizer",)


def encode_layers(model: AudioModel, audio: torch.Tensor, lens: torch.Tensor, layer: Any):
    """Final encoder output, the probed layer's frames ``(B, T', D)`` and their lens: ``layer``
    indexes the encoder's ``forward_layers`` list (negative from the end) or is ``"average"``
    (the mean of every layer output)."""
    enc = model.encoder
    if not hasattr(enc, "forward_layers"):
        raise ConfigError(
            f"eval.layer={layer!r}: encoder {type(enc).__name__} does not expose its layers "
            "(forward_layers); probe its final output (eval.layer=null)"
        )
    feats, flens = model.features(audio, lens)
    layers, hlens = enc.forward_layers(feats, flens)
    if layer == "average":
        return layers[-1], torch.stack(layers).mean(dim=0), hlens
    if not -len(layers) <= int(layer) < len(layers):
        raise ConfigError(f"eval.layer={layer}: the encoder has {len(layers)} layer outputs")
    return layers[-1], layers[int(layer)], hlens


def model_features(
    model: AudioModel,
    frames: bool = False,
    tokenizer: Any = None,
    generation: dict[str, Any] | None = None,
    layer: Any = None,
):
    """Feature function for :func:`extract`: mean-pooled encoder output + joint embedding;
    with ``frames`` also the frame-level output (``frames``/``frame_lens``), with ``generation``
    (``{"method": ..., **options}``) also the objective's captions (``generated``). With
    ``layer`` (``eval.layer``) the pooled vector and frames come from that encoder layer."""
    gen = dict(generation or {})
    method = gen.pop("method", "beam")

    def fn(audio: torch.Tensor, lens: torch.Tensor) -> dict[str, Any]:
        if layer is None:
            hidden, hlens = model.encode(audio, lens)
            probe = hidden
        else:
            hidden, probe, hlens = encode_layers(model, audio, lens, layer)
        out: dict[str, Any] = {"pooled": masked_mean(probe, hlens)}
        if hasattr(model.objective, "embed_audio"):
            out["audio_emb"] = model.objective.embed_audio(hidden, hlens)
        if frames:
            out["frames"], out["frame_lens"] = probe, hlens
        if generation is not None:
            out["generated"] = model.objective.generate(hidden, hlens, tokenizer, method, **gen)
        return out

    return fn


def logmel_features(model: AudioModel):
    """Baseline: mean and std over time of the frontend's log-mel features ``(B, 2F)``."""

    def fn(audio: torch.Tensor, lens: torch.Tensor) -> dict[str, torch.Tensor]:
        feats, flens = model.frontend(audio, lens)
        return {"pooled": mean_std_pool(feats, flens)}

    return fn


def text_features(model: AudioModel, tokenizer: Any, batch_size: int = 256):
    if not hasattr(model.objective, "embed_text"):
        return None

    @torch.no_grad()
    def fn(texts: list[str]) -> torch.Tensor:
        out = []
        for i in range(0, len(texts), batch_size):
            ids, lens = tokenizer.encode_batch(texts[i : i + batch_size])
            out.append(model.objective.embed_text(ids, lens).float())
        return torch.cat(out)

    return fn


def run_provenance(run: Run) -> dict[str, Any]:
    """Columns recorded on every result row: the checkpoint evaluated, a hash of the run's
    resolved config, the seed, and the run's ``tags`` (as ``tag_<name>``; e.g. the data
    fraction, objective and initialisation of a study cell)."""
    cfg = run.own_config
    out: dict[str, Any] = {
        "checkpoint": str(run.weights_path()),
        "config_hash": run.config_hash(),
        "weights_hash": run.weights_hash(),
        "seed": cfg.get("seed"),
    }
    for key, value in sorted((cfg.get("tags") or {}).items()):
        out[f"tag_{key}"] = value
    return out


def leak_message(leaks: dict[str, list[str]], pretrain_path: str) -> str:
    """One readable error naming the splits, counts and the first overlapping ids."""
    parts = [
        f"{split}: {len(ids)} clip(s) ({', '.join(ids[:5])}{', ...' if len(ids) > 5 else ''})"
        for split, ids in leaks.items()
    ]
    return (
        f"evaluation clips also in the pretraining manifest {pretrain_path}: "
        + "; ".join(parts)
        + " (filter them at aggregation, or set eval.check_leakage=false to report anyway)"
    )


def check_leakage(run: Run, cuts: dict[str, CutSet]) -> None:
    """ConfigError when an evaluated clip is one the run was pretrained on (see
    :mod:`toolkit.data.leakage`); a loud warning when the run's pretraining data cannot be
    found (then nothing was checked)."""
    pretrain, missing = run.pretraining_sources()
    if not pretrain:
        log.warning("LEAKAGE NOT CHECKED: the run's config names no data.train")
        return
    if missing:
        log.warning(
            "LEAKAGE NOT CHECKED: the run's pretraining data %s is not found (looked in the "
            "run's origin %s, %s and its parents); evaluated clips may overlap it",
            ", ".join(missing),
            run.origin or "(not recorded)",
            run.dir,
        )
        return
    evaluated = {s: c for s, c in cuts.items() if s != "train"}
    leaks = find_leaks(open_cuts(pretrain, "data.train"), evaluated)
    if leaks:
        raise ConfigError(leak_message(leaks, ", ".join(source_paths(pretrain))))
    log.info("leakage check: no evaluated clip is in %s", ", ".join(source_paths(pretrain)))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--exp-dir", required=True)
    p.add_argument("--out-dir", default=None, help="default: <exp-dir>/eval")
    p.add_argument(
        "--config",
        "-c",
        action="append",
        default=[],
        help="extra YAML merged over the run's config.yaml (e.g. an eval: section; repeatable)",
    )
    p.add_argument(
        "--skip-missing",
        action="store_true",
        help="exit quietly (status 0) when a manifest of the evaluation data is missing "
        "(task configs of corpora that were not prepared)",
    )
    p.add_argument(
        "--eval-from",
        metavar="RUN",
        help="take the eval: section of another run's config.yaml (under --config and the "
        "overrides; e.g. to evaluate a model before and after adapting it the same way)",
    )
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. eval.baselines=[]")
    args = p.parse_intermixed_args(argv)
    exp = Path(args.exp_dir)
    out_dir = Path(args.out_dir) if args.out_dir else exp / "eval"
    setup_logging(out_dir / "evaluate.log")
    run = open_run(exp, configs=args.config, overrides=args.overrides)
    cfg = run.config
    if args.eval_from:  # the other run's eval section, then this command's own on top
        other = Path(args.eval_from) / "config.yaml"
        if not other.is_file():
            raise ConfigError(f"--eval-from: {other} not found")
        mine = load_config(args.config, args.overrides).get("eval") or {}
        cfg["eval"] = deep_merge(load_config(other).get("eval") or {}, mine)
    import_plugins(cfg.get("plugins"))
    check_top_level(cfg)
    dcfg, ecfg = data_config(cfg), eval_config(cfg)
    for i, b in enumerate(ecfg.evaluators):  # early check: nothing is loaded yet
        EVALUATORS.check(b, f"eval.evaluators[{i}]", EVALUATOR_CONTEXT_ARGS)
    wanted = list(ecfg.folds) or [
        p for s in ("train", "dev", "test") for p in source_paths(getattr(dcfg, s)) or [None]
    ]
    missing = [p for p in wanted if not p or not Path(p).exists()]
    if missing and args.skip_missing:
        log.warning(
            "skipping this evaluation: manifest(s) not found: %s", ", ".join(map(str, missing))
        )
        return 0
    cuts: dict[str, CutSet] = {}
    if ecfg.folds:  # k-fold cross-validation: each fold manifest is embedded once
        if len(ecfg.folds) < 3:
            raise ConfigError(f"eval.folds: cross-validation needs >= 3 folds, got {ecfg.folds}")
        for k, path in enumerate(ecfg.folds):
            if not Path(path).is_file():
                raise ConfigError(f"eval.folds[{k}]: manifest {path} not found")
            cuts[f"fold{k + 1}"] = CutSet.from_file(path).to_eager()
    else:
        for split in ("train", "dev", "test"):  # a manifest, a Shar dir or a list of sources
            cuts[split] = open_cuts(getattr(dcfg, split), f"data.{split}").to_eager()
    if ecfg.check_leakage:
        check_leakage(run, cuts)

    tokenizer = run.tokenizer()
    evaluators = [
        EVALUATORS.build(b, f"eval.evaluators[{i}]", tokenizer=tokenizer)
        for i, b in enumerate(ecfg.evaluators)
    ]
    needs = set().union(*(getattr(ev, "needs", ()) for ev in evaluators))
    generator = next((ev for ev in evaluators if "generated" in getattr(ev, "needs", ())), None)

    def features(model: AudioModel, split: str):
        gen = None
        if generator is not None and split == getattr(generator, "split", "test"):
            if hasattr(model.objective, "generate"):
                gen = dict(generator.generation)
        return model_features(model, "frames" in needs, tokenizer, gen, ecfg.layer)

    def evaluate_model(name: str, sets: dict[str, EmbeddingSet], text_fn: Any) -> list[dict]:
        if not ecfg.folds:
            return [r for ev in evaluators for r in ev(name, sets, text_fn)]
        folds = list(sets.values())
        rounds = []
        for k in range(len(folds)):
            splits = fold_splits(folds, k)
            rounds.append([r for ev in evaluators for r in ev(name, splits, text_fn)])
        return average_rounds(rounds)

    models: dict[str, tuple[Any, Any]] = {}
    pretrained = run.model(tokenizer)
    (out_dir / "load_report.txt").write_text(run.report.table() + "\n")  # next to the results
    models["pretrained"] = (
        lambda s: features(pretrained, s),
        text_features(pretrained, tokenizer),
    )
    if "random_init" in ecfg.baselines:
        torch.manual_seed(int(cfg.get("seed", 0)))
        rnd = build_model(cfg, tokenizer, init_weights=False).eval()
        models["random_init"] = (lambda s: features(rnd, s), text_features(rnd, tokenizer))
    if "logmel_stats" in ecfg.baselines:
        models["logmel_stats"] = (lambda s: logmel_features(pretrained), None)

    rows: list[dict] = []
    split_counts = None
    # All models read each batch of audio once, unless frame-level outputs are kept: those of
    # every model at once would multiply the memory they take.
    passes = [list(models)] if "frames" not in needs else [[name] for name in models]
    for names in passes:
        per_model: dict[str, dict[str, EmbeddingSet]] = {name: {} for name in names}
        for s, c in cuts.items():
            split = "test" if ecfg.folds else s
            got = extract_models(
                {name: models[name][0](split) for name in names},
                c,
                ecfg.batch_duration,
                ecfg.max_clip_duration,
                dcfg.sampling_rate,
                num_workers=ecfg.num_workers,
                desc=f"{'+'.join(names)}/{s}",
            )
            for name in names:
                per_model[name][s] = got[name]
        if split_counts is None and not ecfg.folds:  # clips embedded: the same for every model
            sets = per_model[names[0]]
            split_counts = data_counts(
                {s: len(es.cut_ids) for s, es in sets.items()},
                {s: source_paths(getattr(dcfg, s)) for s in sets},
                unreadable={s: es.num_skipped for s, es in sets.items()},
            )
        for name in names:
            rows.extend(evaluate_model(name, per_model[name], models[name][1]))
            log.info("evaluated %s", name)
    for ev in evaluators:
        if hasattr(ev, "finish"):
            rows.extend(ev.finish())
    provenance = run_provenance(run)
    for r in rows:
        r.update(provenance)
        if ecfg.name:
            r["group"] = f"{r['group']} [{ecfg.name}]"
    curves = None
    if (exp / "train_log.csv").is_file():
        all_curves = read_scalars_csv(exp / "train_log.csv")
        curves = {k: v for k, v in all_curves.items() if k == "train/loss"}
    md = write_report(
        rows, out_dir, title=f"Results: {exp.name}", loss_curves=curves, split_counts=split_counts
    )
    print(md)
    log.info("results written to %s (results.md, results.csv, plot_*.png)", out_dir)
    return 0


def cli() -> None:
    run_cli(main)


if __name__ == "__main__":
    cli()
