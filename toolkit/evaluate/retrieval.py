"""Audio <-> text retrieval metrics (R@K, mAP@10, median / mean rank) with pessimistic ties.

Ranks are pessimistic: an item tied in score with a relevant item is ranked before it, so a
degenerate model (e.g. constant embeddings) cannot score above chance by tie order. For
audio->text with several relevant captions, the ranking is the total order "score descending,
irrelevant captions before relevant ones among ties", and the rank of an audio query is that of
its best-ranked caption (the AudioCaps / Clotho protocol: a hit if ANY caption is retrieved).

:func:`retrieval_rows` turns the metrics into report rows; the rank metrics ``medR`` / ``meanR``
are the only ones where lower is better (:data:`LOWER_IS_BETTER_METRICS`).
:func:`label_template_task` tells when captions are made from labels (instance retrieval is then
not meaningful: the retrieval evaluator marks its rows ``not_meaningful``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

MAP_CUTOFF = 10
# Report metric names (rows of :func:`retrieval_rows`) where a smaller value is better.
LOWER_IS_BETTER_METRICS = frozenset({"medR", "meanR"})
DIRECTIONS = (("a2t", "audio→text"), ("t2a", "text→audio"))


def _check(audio_emb: Tensor, text_emb: Tensor, text_to_audio: Tensor) -> None:
    if audio_emb.dim() != 2 or text_emb.dim() != 2 or audio_emb.shape[1] != text_emb.shape[1]:
        raise ValueError(
            f"expected (N, E) and (M, E) embeddings, got {tuple(audio_emb.shape)} "
            f"and {tuple(text_emb.shape)}"
        )
    if text_to_audio.shape != (text_emb.shape[0],):
        raise ValueError(
            f"text_to_audio must be ({text_emb.shape[0]},), got {tuple(text_to_audio.shape)}"
        )
    n = audio_emb.shape[0]
    if n == 0 or text_emb.shape[0] == 0:
        raise ValueError("empty audio or text set")
    if int(text_to_audio.min()) < 0 or int(text_to_audio.max()) >= n:
        raise ValueError(f"text_to_audio values must lie in [0, {n})")


def median_rank(rank: Tensor) -> float:
    """Median of 1-based ranks as the retrieval literature computes it:
    ``floor(median(rank - 1)) + 1`` (numpy median, i.e. the mean of the two middle values for
    an even count, then floored), so it is always a whole rank."""
    r = rank.double().sort().values - 1.0
    n = r.numel()
    mid = r[n // 2] if n % 2 else 0.5 * (r[n // 2 - 1] + r[n // 2])
    return float(math.floor(float(mid)) + 1)


def _rank_stats(prefix: str, rank: Tensor, ks: Sequence[int]) -> dict:
    """R@K (percent), median and mean rank of 1-based ``rank`` (one per query)."""
    out = {f"{prefix}_R@{k}": 100.0 * (rank <= k).double().mean().item() for k in ks}
    out[f"{prefix}_medR"] = median_rank(rank)
    out[f"{prefix}_meanR"] = rank.double().mean().item()
    return out


def _text_to_audio(audio: Tensor, text: Tensor, t2a: Tensor, chunk: int) -> Tensor:
    """Per text ``(M,)``: rank of its audio = number of audios scoring >= the correct one."""
    ranks = []
    for start in range(0, text.shape[0], chunk):
        sim = text[start : start + chunk] @ audio.T  # (m, N)
        target = t2a[start : start + chunk]
        correct = sim.gather(1, target[:, None])
        ranks.append((sim >= correct).sum(dim=1))
    return torch.cat(ranks).double()


def _caption_table(t2a: Tensor, n: int) -> tuple[Tensor, Tensor]:
    """(N, R_max) caption indices of each audio and its (N, R_max) validity mask.

    Padding slots repeat the audio's first caption so they are always safe to index.
    """
    counts = torch.bincount(t2a, minlength=n)
    if bool((counts == 0).any()):
        missing = torch.nonzero(counts == 0).flatten()[:5].tolist()
        raise ValueError(f"every audio needs >= 1 caption; e.g. audio {missing} has none")
    order = torch.argsort(t2a, stable=True)
    offsets = torch.cumsum(counts, 0) - counts
    slot = torch.arange(t2a.shape[0], device=t2a.device) - offsets[t2a[order]]
    table = torch.full((n, int(counts.max())), -1, dtype=torch.long, device=t2a.device)
    table[t2a[order], slot] = order
    valid = table >= 0
    table = torch.where(valid, table, table[:, :1])
    return table, valid


def _audio_to_text(audio: Tensor, text: Tensor, t2a: Tensor, chunk: int) -> tuple[Tensor, Tensor]:
    """Per audio ``(N,)``: the rank of its best-ranked caption in the pessimistic order, and
    its AP@10."""
    n, m = audio.shape[0], text.shape[0]
    table, table_valid = _caption_table(t2a, n)
    firsts = []
    aps = []
    for start in range(0, n, chunk):
        sim = audio[start : start + chunk] @ text.T  # (a, M)
        rel_idx = table[start : start + chunk]  # (a, R)
        rel_scores = sim.gather(1, rel_idx)
        valid = table_valid[start : start + chunk]
        rel_scores = torch.where(valid, rel_scores, torch.full_like(rel_scores, -torch.inf))
        rel_scores, _ = rel_scores.sort(dim=1, descending=True)  # valid entries first
        # scores of the irrelevant captions, ascending; relevant ones pushed to -inf
        irr = sim.scatter(1, rel_idx, torch.full_like(rel_scores, -torch.inf))
        irr, _ = irr.sort(dim=1)
        # irrelevant captions scoring >= each relevant one (count of those < s is searchsorted)
        n_before = m - torch.searchsorted(irr, rel_scores.contiguous(), right=False)
        pos = torch.arange(rel_scores.shape[1], device=sim.device)[None, :]
        valid = torch.isfinite(rel_scores)
        rank = (n_before + pos + 1).double()  # (a, R) 1-based ranks of the relevant captions
        firsts.append(rank[:, 0])
        prec = (pos + 1).double() / rank
        prec = torch.where(valid & (rank <= MAP_CUTOFF), prec, torch.zeros_like(prec))
        num_rel = valid.sum(dim=1).clamp(max=MAP_CUTOFF).double()
        aps.append(prec.sum(dim=1) / num_rel)
    return torch.cat(firsts), torch.cat(aps)


def retrieval_ranks(
    audio_emb: Tensor, text_emb: Tensor, text_to_audio: Tensor, chunk_size: int = 256
) -> dict[str, Tensor]:
    """Pessimistic 1-based ranks of every query (arguments as in :func:`retrieval_metrics`).

    Returns ``{"a2t": (N,) rank of each audio's best-ranked caption among the M captions,
    "t2a": (M,) rank of each caption's audio among the N audios, "a2t_ap": (N,) AP@10}``
    (float64, on the embeddings' device).
    """
    t2a = text_to_audio.to(audio_emb.device).long()
    _check(audio_emb, text_emb, t2a)
    audio = audio_emb.detach().float()
    text = text_emb.detach().to(device=audio.device, dtype=torch.float32)
    chunk = max(1, int(chunk_size))
    a2t_rank, a2t_ap = _audio_to_text(audio, text, t2a, chunk)
    return {"a2t": a2t_rank, "t2a": _text_to_audio(audio, text, t2a, chunk), "a2t_ap": a2t_ap}


def retrieval_metrics(
    audio_emb: Tensor,
    text_emb: Tensor,
    text_to_audio: Tensor,
    ks: Sequence[int] = (1, 5, 10),
    chunk_size: int = 256,
) -> dict:
    """Audio->text and text->audio retrieval metrics, in percent.

    Args:
        audio_emb: (N, E) audio embeddings (L2-normalised by the caller; similarity = dot).
        text_emb: (M, E) caption embeddings.
        text_to_audio: (M,) long, index of the audio each caption describes; every audio must
            have at least one caption.
        ks: cut-offs K for R@K.
        chunk_size: rows of the similarity matrix computed at once (memory ~ chunk * max(N, M)).

    Returns:
        ``a2t_R@K`` / ``t2a_R@K`` for each K, ``a2t_mAP@10``, ``t2a_mAP@10``, the median and
        mean rank ``a2t_medR``, ``a2t_meanR``, ``t2a_medR``, ``t2a_meanR`` (1-based ranks, lower
        is better; see :func:`median_rank`), and the expected R@1 of a random ranking
        ``a2t_R@1_chance`` (mean over audios of #captions / M) and ``t2a_R@1_chance`` (1 / N).
        An audio query's rank is the rank of its best-ranked caption, so a2t R@K counts a hit
        when ANY of its captions is in the top K. text->audio mAP@10 is the mean of 1/rank (0
        beyond rank 10); audio->text mAP@10 sums precision@rank over relevant captions ranked
        <= 10 and divides by min(#relevant, 10).
    """
    ranks = retrieval_ranks(audio_emb, text_emb, text_to_audio, chunk_size)
    t2a = text_to_audio.to(ranks["t2a"].device).long()
    n, m = audio_emb.shape[0], text_emb.shape[0]
    out = _rank_stats("a2t", ranks["a2t"], ks)
    out[f"a2t_mAP@{MAP_CUTOFF}"] = 100.0 * ranks["a2t_ap"].mean().item()
    out.update(_rank_stats("t2a", ranks["t2a"], ks))
    rank = ranks["t2a"]
    rr = torch.where(rank <= MAP_CUTOFF, 1.0 / rank, torch.zeros_like(rank))
    out[f"t2a_mAP@{MAP_CUTOFF}"] = 100.0 * rr.mean().item()
    counts = torch.bincount(t2a, minlength=n).double()
    out["a2t_R@1_chance"] = 100.0 * (counts / m).mean().item()
    out["t2a_R@1_chance"] = 100.0 / n
    return out


def caption_queries(captions: Sequence[Sequence[str]]) -> tuple[list[int], list[str], Tensor]:
    """Flatten per-clip caption lists for :func:`retrieval_metrics`.

    Clips without a (non-blank) caption cannot be retrieved and are left out. Returns the kept
    clip indices ``K`` (into ``captions``), every caption of the kept clips (M, clip-major), and
    ``(M,)`` long: the position in ``K`` of each caption's clip.
    """
    keep: list[int] = []
    texts: list[str] = []
    owner: list[int] = []
    for i, caps in enumerate(captions):
        caps = [c for c in caps if c and c.strip()]
        if caps:
            texts.extend(caps)
            owner.extend([len(keep)] * len(caps))
            keep.append(i)
    return keep, texts, torch.tensor(owner, dtype=torch.long)


def label_template_task(
    captions: Sequence[Sequence[str]], labels: Mapping[str, Sequence[Any]]
) -> str | None:
    """The label task whose labels determine the captions, else None.

    Captions made from labels (the ``folder`` prepare's ``the sound of <label>``) are the same
    for every clip of a label: a caption then matches many clips equally and instance retrieval
    is not meaningful (pessimistic ties put audio→text R@1 at 0, below chance). True when, for
    some task, every clip of a label has the same captions and at least one caption set is
    shared by two clips. Clips without a caption or label are ignored."""
    for task in sorted(labels):
        values = labels[task]
        seen: dict[str, tuple[str, ...]] = {}
        shared = False
        for caps, value in zip(captions, values):
            key = tuple(sorted(c for c in caps if c and c.strip()))
            if not key or value is None:
                continue
            label = repr(value)
            if label in seen:
                if seen[label] != key:
                    break
                shared = True
            else:
                seen[label] = key
        else:
            if shared:
                return task
    return None


def retrieval_rows(model: str, group: str, res: dict, ks: Sequence[int] = (1, 5, 10)) -> list[dict]:
    """Report rows of :func:`retrieval_metrics` output ``res``: per direction (tasks
    ``audio→text`` / ``text→audio``) ``R@K`` for each K, ``mAP@10`` (percent, higher is better),
    ``medR`` and ``meanR`` (ranks, lower is better: :data:`LOWER_IS_BETTER_METRICS`); the chance
    column is filled for R@1 only."""
    rows = []
    for direction, task in DIRECTIONS:
        for metric in (*(f"R@{k}" for k in ks), f"mAP@{MAP_CUTOFF}", "medR", "meanR"):
            chance = res.get(f"{direction}_R@1_chance") if metric == "R@1" else None
            rows.append(
                {
                    "model": model,
                    "group": group,
                    "task": task,
                    "metric": metric,
                    "value": res[f"{direction}_{metric}"],
                    "chance": chance,
                }
            )
    return rows
