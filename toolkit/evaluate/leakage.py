"""Evaluation hygiene: clips of the evaluation splits that the encoder was pretrained on.

A clip is identified by every key it carries: its cut id, ``<source>:<orig_id>`` and its
``audio_key`` (e.g. ``yt:<youtube id>:<start>``, shared across corpora). An evaluation clip
whose key occurs in the pretraining manifest is a leak.
"""

from __future__ import annotations

from collections.abc import Iterable

from lhotse.cut import Cut

from toolkit.data.cuts import cut_custom


def clip_keys(cut: Cut) -> set[str]:
    """The identifiers of one clip (cut id, ``source:orig_id``, ``audio_key``)."""
    custom = cut_custom(cut)
    keys = {f"id:{cut.id}"}
    if custom.get("orig_id"):
        keys.add(f"orig:{custom.get('source', '')}:{custom['orig_id']}")
    if custom.get("audio_key"):
        keys.add(f"audio:{custom['audio_key']}")
    return keys


def find_leaks(
    pretrain: Iterable[Cut], evaluation: dict[str, Iterable[Cut]]
) -> dict[str, list[str]]:
    """``{split: [ids of evaluation cuts that share a key with a pretraining cut]}`` (splits
    without leaks are left out). ``pretrain`` is streamed once; only its keys are kept."""
    seen: set[str] = set()
    for cut in pretrain:
        seen.update(clip_keys(cut))
    out = {}
    for split, cuts in evaluation.items():
        leaks = [c.id for c in cuts if clip_keys(c) & seen]
        if leaks:
            out[split] = leaks
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
