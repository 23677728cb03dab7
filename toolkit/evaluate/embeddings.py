"""Frozen-encoder embedding extraction over a CutSet (deterministic, batch-independent).

``extract`` runs a feature function over a cut manifest and returns an :class:`EmbeddingSet` in
the manifest's order: pooled clip vectors, optional audio-text embeddings, labels and captions,
and (when the feature function gives them) per-clip frame-level encoder outputs and generated
captions in ``extra``. Clips that fail to load are skipped (counted and named in warnings), never
a crash. ``extract_models`` does the same for several models in one pass over the audio.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from lhotse import CutSet
from torch import Tensor
from tqdm import tqdm

from toolkit.data.cuts import cut_captions, cut_custom
from toolkit.data.dataset import CaptionDataset
from toolkit.data.sampling import make_loader, make_sampler

log = logging.getLogger(__name__)

# (audio (B,S), audio_lens (B,)) -> {"pooled": (B,D), optionally "audio_emb": (B,E),
# "frames": (B,T,D) with "frame_lens": (B,), "generated": list[str] of B captions}
FeatureFn = Callable[[Tensor, Tensor], dict[str, Any]]


@dataclass
class EmbeddingSet:
    """Per-clip outputs of one model on one split (rows follow ``cut_ids``)."""

    cut_ids: list[str]
    pooled: Tensor  # (N, D) clip vectors for probes
    audio_emb: Tensor | None  # (N, E) L2-normalised joint-space embeddings, if the model has them
    labels: dict[str, list[Any]]  # task -> label or None per clip
    captions: list[list[str]]
    num_skipped: int = 0
    # optional per-clip outputs, rows following ``cut_ids``: "frames" (list of (T_i, D) tensors,
    # valid frames only, ``frames_dtype``), "generated" (list of str: the model's own captions),
    # "caption_styles" (list of the clip's caption styles, parallel to ``captions``)
    extra: dict[str, Any] = field(default_factory=dict)


def _manifest_order(ids: list[str], by_id: dict[str, Any]) -> list[int]:
    """Indices that put rows listed in ``ids`` back into the order of ``by_id`` (the manifest)."""
    position = {cut_id: i for i, cut_id in enumerate(by_id)}
    return sorted(range(len(ids)), key=lambda k: position[ids[k]])


class _Rows:
    """One model's outputs over the batches of a pass, gathered for :class:`EmbeddingSet`."""

    def __init__(self, desc: str, frames_dtype: torch.dtype) -> None:
        self.desc, self.frames_dtype = desc, frames_dtype
        self.pooled: list[Tensor] = []
        self.joint: list[Tensor] = []
        self.frames: list[Tensor] = []
        self.generated: list[str] = []
        self.overflow = 0

    def add(self, out: dict[str, Any]) -> None:
        self.pooled.append(out["pooled"].float().cpu())
        if "audio_emb" in out:
            self.joint.append(out["audio_emb"].float().cpu())
        if "frames" in out:
            hidden, hlens = out["frames"], out["frame_lens"].tolist()
            for b, n in enumerate(hlens):
                clip = hidden[b, : int(n)].to("cpu", self.frames_dtype).clone()
                self.overflow += int(not bool(torch.isfinite(clip).all()))
                self.frames.append(clip)
        if "generated" in out:
            self.generated.extend(out["generated"])

    def finish(self, order: list[int], shared: dict[str, Any]) -> EmbeddingSet:
        """The set in manifest ``order``. ``shared`` holds the fields every model of the pass
        has in common (``cut_ids``, ``labels``, ``captions``, ``num_skipped``, ``extra``), already
        in that order; each set gets its own copies of the lists."""
        if self.overflow:
            log.warning(
                "%s: %d clips have non-finite frames in %s",
                self.desc,
                self.overflow,
                self.frames_dtype,
            )
        ids = list(shared["cut_ids"])
        extra = {key: list(vals) for key, vals in shared["extra"].items()}
        if self.frames:
            extra["frames"] = [self.frames[k] for k in order]
        if self.generated:
            extra["generated"] = [self.generated[k] for k in order]
        for key, vals in extra.items():
            if len(vals) != len(ids):
                raise RuntimeError(f"{self.desc}: {len(vals)} {key} entries for {len(ids)} clips")
        return EmbeddingSet(
            cut_ids=ids,
            pooled=torch.cat(self.pooled)[order],
            audio_emb=torch.cat(self.joint)[order] if self.joint else None,
            labels={task: list(vals) for task, vals in shared["labels"].items()},
            captions=[list(c) for c in shared["captions"]],
            num_skipped=shared["num_skipped"],
            extra=extra,
        )


def extract(fn: FeatureFn, cuts: CutSet, **options: Any) -> EmbeddingSet:
    """:func:`extract_models` for one model: ``options`` are its keyword arguments."""
    desc = options.setdefault("desc", "extract")
    return extract_models({desc: fn}, cuts, **options)[desc]


@torch.no_grad()
def extract_models(
    fns: dict[str, FeatureFn],
    cuts: CutSet,
    batch_duration: float = 200.0,
    max_clip_duration: float | None = 30.0,
    sampling_rate: int = 16000,
    device: torch.device | str = "cpu",
    num_workers: int = 0,
    desc: str = "extract",
    frames_dtype: torch.dtype = torch.float16,
) -> dict[str, EmbeddingSet]:
    """Run each feature function (``name -> fn``) over ``cuts`` (no random crops) in one pass
    over the audio: each batch is read and decoded once and given to every model. Each set is
    the one a pass of that model alone gives; rows come back in manifest order.

    Batches hold clips of similar duration (the manifest sorted by duration, stable), so little
    compute goes to padding; clip outputs do not depend on the batching (padding is masked).

    If ``fn`` returns ``frames (B, T, D)`` and ``frame_lens (B,)``, the valid frames of every clip
    are kept as a CPU ``(T_i, D)`` tensor of ``frames_dtype`` in ``extra["frames"]`` (padding is
    never stored); a ``generated`` list of ``B`` captions goes to ``extra["generated"]``.
    """
    by_id = {c.id: c for c in cuts}  # the manifest, read once
    by_length = CutSet.from_cuts(sorted(by_id.values(), key=lambda c: c.duration))
    sampler = make_sampler(by_length, batch_duration, shuffle=False, bucketing=False)
    sampler.set_epoch(0)
    ds = CaptionDataset(
        None, sampling_rate, max_clip_duration, "first", train=False, require_caption=False
    )
    rows = {
        name: _Rows(desc if len(fns) == 1 else f"{desc} [{name}]", frames_dtype) for name in fns
    }
    ids: list[str] = []
    skipped = 0
    labels: dict[str, list[Any]] = {}
    for batch in tqdm(
        make_loader(ds, sampler, num_workers), desc=desc, unit="batch", mininterval=10
    ):
        skipped += batch["num_skipped"]
        if not batch["cut_ids"]:
            continue
        audio, lens = batch["audio"].to(device), batch["audio_lens"].to(device)
        for name, fn in fns.items():
            rows[name].add(fn(audio, lens))
        n0 = len(ids)
        ids.extend(batch["cut_ids"])
        for task in batch["labels"]:
            labels.setdefault(task, [None] * n0)
        for task in labels:
            labels[task].extend(batch["labels"].get(task, [None] * len(batch["cut_ids"])))
    if skipped:
        log.warning("%s: %d clips could not be loaded and were left out", desc, skipped)
    if not ids:
        raise RuntimeError(f"{desc}: no clip could be loaded")
    order = _manifest_order(ids, by_id)
    ids = [ids[k] for k in order]
    shared = {
        "cut_ids": ids,
        "labels": {task: [vals[k] for k in order] for task, vals in labels.items()},
        "captions": [cut_captions(by_id[i]) for i in ids],
        "num_skipped": skipped,
        # caption style of each caption (parallel to ``captions``; QA "describe" items use it)
        "extra": {
            "caption_styles": [
                [str(x) for x in (cut_custom(by_id[i]).get("caption_style") or [])] for i in ids
            ]
        },
    }
    return {name: r.finish(order, shared) for name, r in rows.items()}
