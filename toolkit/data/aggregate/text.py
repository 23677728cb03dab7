"""Caption text clean-up for the aggregator: normalisation and per-clip (near-)duplicate removal.

* :func:`normalize_caption`: Unicode NFKC, invisible characters dropped, whitespace collapsed,
  surrounding quotes stripped (repeatedly, matching pairs only), optional lowercasing.
* :func:`fold_caption`: the comparison key of near-duplicate detection: case-folded, every
  punctuation or symbol character replaced by a space, whitespace collapsed.
* :func:`dedup_captions`: keeps the first of every group of duplicate captions of ONE clip:
  exact duplicates (after normalisation), captions with the same folded key, and captions whose
  folded token sets have a Jaccard similarity ``>= near_dup_jaccard``. The work is quadratic in
  the number of captions of one clip only (a handful), linear in the corpus.
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence

_WS = re.compile(r"\s+")
_NON_WORD = re.compile(r"[^\w\s]|_")
QUOTE_PAIRS = {
    '"': '"',
    "'": "'",
    "`": "`",
    "\u201c": "\u201d",  # “ ”
    "\u201d": "\u201d",
    "\u2018": "\u2019",  # ‘ ’
    "\u201e": "\u201c",  # „ “
    "\u00ab": "\u00bb",  # « »
    "\u300c": "\u300d",  # 「 」
}


@dataclasses.dataclass(frozen=True)
class TextOptions:
    """Caption normalisation and duplicate options.

    Args:
        nfkc: apply Unicode NFKC normalisation (full-width forms, ligatures, non-breaking spaces).
        lowercase: lowercase every caption.
        strip_quotes: remove quotes that surround the whole caption (``"a dog barks"``).
        near_dup_jaccard: two captions of one clip whose folded token sets have a Jaccard
            similarity at or above this value are near-duplicates (the later one is dropped);
            ``None`` disables the Jaccard test (folded-identical captions are still merged).
    """

    nfkc: bool = True
    lowercase: bool = False
    strip_quotes: bool = True
    near_dup_jaccard: float | None = 0.9

    def __post_init__(self) -> None:
        j = self.near_dup_jaccard
        if j is not None and not 0.0 < j <= 1.0:
            raise ValueError(f"near_dup_jaccard must be in (0, 1] or None, got {j}")


def normalize_caption(text: str, opts: TextOptions = TextOptions()) -> str:
    """One cleaned caption (``""`` when nothing is left)."""
    if not text:
        return ""
    if opts.nfkc:
        text = unicodedata.normalize("NFKC", text)
    if not text.isprintable():  # rare: control/format chars (zero-width space, BOM, soft hyphen)
        text = "".join(
            " " if ch in "\t\n\r\f\v" else ch
            for ch in text
            if ch in "\t\n\r\f\v" or unicodedata.category(ch) not in ("Cc", "Cf")
        )
    text = _WS.sub(" ", text).strip()
    if opts.strip_quotes:
        while len(text) >= 2 and QUOTE_PAIRS.get(text[0]) == text[-1]:
            text = text[1:-1].strip()
    if opts.lowercase:
        text = text.lower()
    return text


def fold_caption(text: str) -> str:
    """Near-duplicate key: case-folded, punctuation and symbols → space, whitespace collapsed."""
    return _WS.sub(" ", _NON_WORD.sub(" ", text.casefold())).strip()


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    """``|a ∩ b| / |a ∪ b|`` (1.0 for two empty sets)."""
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def dedup_captions(
    captions: Sequence[str],
    styles: Sequence[str],
    sources: Sequence[str],
    opts: TextOptions = TextOptions(),
) -> tuple[list[str], list[str], list[str], Counter]:
    """Normalise the captions of one clip and drop (near-)duplicates, keeping the first of each.

    Args:
        captions, styles, sources: parallel lists (caption text, caption style, corpus of the
            caption), in priority order (the first occurrence is the one kept).

    Returns:
        ``(captions, styles, sources, counts)``: the kept parallel lists and a counter of the
        dropped ones by reason: ``empty`` (nothing left after normalisation), ``exact``
        (identical normalised text), ``folded`` (identical after case/punctuation folding),
        ``jaccard`` (token-set Jaccard ``>= opts.near_dup_jaccard``).
    """
    kept_c: list[str] = []
    kept_s: list[str] = []
    kept_src: list[str] = []
    exact: set[str] = set()
    folded: set[str] = set()
    token_sets: list[frozenset[str]] = []
    counts: Counter = Counter()
    for cap, style, src in zip(captions, styles, sources, strict=True):
        text = normalize_caption(cap, opts)
        if not text:
            counts["empty"] += 1
            continue
        if text in exact:
            counts["exact"] += 1
            continue
        key = fold_caption(text)
        if key in folded:
            counts["folded"] += 1
            continue
        tokens = frozenset(key.split())
        thr = opts.near_dup_jaccard
        if thr is not None and any(jaccard(tokens, t) >= thr for t in token_sets):
            counts["jaccard"] += 1
            continue
        exact.add(text)
        folded.add(key)
        token_sets.append(tokens)
        kept_c.append(text)
        kept_s.append(style)
        kept_src.append(src)
    return kept_c, kept_s, kept_src, counts
