"""Stage 1: validate (and concatenate) prepared cuts, and describe the corpus.

``validate_cuts`` drops cuts whose audio file is missing or whose captions are all empty,
counting each reason; ``corpus_stats`` summarises hours per domain/source, captions per clip,
caption length (words) and the caption-style mix.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lhotse import CutSet
from lhotse.cut import Cut

from toolkit.audio import AudioLoadError, read_cut
from toolkit.data.cuts import cut_captions, cut_custom

log = logging.getLogger(__name__)


def _audio_paths(cut: Cut) -> list[str]:
    rec = getattr(cut, "recording", None)
    if rec is None:
        return []
    return [s.source for s in rec.sources if s.type == "file"]


def validate_cuts(
    cuts: Iterable[Cut], check_audio: bool = True, decode_audio: bool = False
) -> tuple[CutSet, Counter]:
    """Keep the usable cuts; returns them and a counter of drop reasons (``missing_audio``,
    ``empty_caption``, ``no_audio_source``; with ``decode_audio`` also ``bad_audio``: the audio
    cannot be decoded, has no samples or has NaN/Inf samples — every cut is decoded once,
    :func:`toolkit.audio.read_cut`). Each dropped cut is logged by id at debug level and the
    first few at warning level, with the detail."""
    kept, reasons = [], Counter()
    for cut in cuts:
        why, detail = None, ""
        if not cut_captions(cut):
            why = "empty_caption"
        elif check_audio or decode_audio:
            if getattr(cut, "recording", None) is None:
                why = "no_audio_source"
            elif any(not Path(p).is_file() for p in _audio_paths(cut)):
                why = "missing_audio"
            elif decode_audio:
                try:
                    read_cut(cut)
                except AudioLoadError as e:
                    why, detail = "bad_audio", f" ({e})"
        if why:
            reasons[why] += 1
            lvl = logging.WARNING if sum(reasons.values()) <= 5 else logging.DEBUG
            log.log(lvl, "dropping cut %s: %s%s", cut.id, why.replace("_", " "), detail)
            continue
        kept.append(cut)
    if reasons:
        log.warning("dropped %d cuts: %s", sum(reasons.values()), dict(reasons))
    return CutSet.from_cuts(kept), reasons


def corpus_stats(cuts: Iterable[Cut]) -> dict[str, Any]:
    """Hours/clips per domain and source, captions per clip, caption words, style mix."""
    hours: dict[str, float] = defaultdict(float)
    clips: Counter = Counter()
    sources: dict[str, float] = defaultdict(float)
    styles: Counter = Counter()
    n_caps: list[int] = []
    words: list[int] = []
    vocab: set[str] = set()
    for cut in cuts:
        c = cut_custom(cut)
        dom = c.get("domain", "unknown")
        hours[dom] += cut.duration / 3600
        clips[dom] += 1
        sources[c.get("source", "unknown")] += cut.duration / 3600
        caps = cut_captions(cut)
        n_caps.append(len(caps))
        for cap in caps:
            toks = cap.lower().split()
            words.append(len(toks))
            vocab.update(toks)
        styles.update(c.get("caption_style") or ["unknown"] * len(caps))
    n = max(1, len(n_caps))
    return {
        "clips": sum(clips.values()),
        "hours": round(sum(hours.values()), 3),
        "hours_per_domain": {k: round(v, 3) for k, v in sorted(hours.items())},
        "clips_per_domain": dict(sorted(clips.items())),
        "hours_per_source": {k: round(v, 3) for k, v in sorted(sources.items())},
        "captions": sum(n_caps),
        "captions_per_clip": round(sum(n_caps) / n, 2),
        "caption_words_mean": round(sum(words) / max(1, len(words)), 2),
        "caption_words_max": max(words, default=0),
        "vocabulary_words": len(vocab),
        "caption_styles": dict(sorted(styles.items())),
    }


def format_stats(name: str, s: dict[str, Any]) -> str:
    """A readable multi-line summary."""
    lines = [
        f"== {name}: {s['clips']} clips, {s['hours']:.2f} h, {s['captions']} captions "
        f"({s['captions_per_clip']:.2f}/clip), caption length {s['caption_words_mean']:.1f} words "
        f"(max {s['caption_words_max']}), vocabulary {s['vocabulary_words']} words",
        "   hours per domain: "
        + ", ".join(
            f"{d} {h:.2f} h ({s['clips_per_domain'][d]} clips)"
            for d, h in s["hours_per_domain"].items()
        ),
        "   caption styles: " + ", ".join(f"{k} {v}" for k, v in s["caption_styles"].items()),
    ]
    return "\n".join(lines)
