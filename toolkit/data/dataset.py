"""CutSet mini-batches → batch dicts (the names are the API; see docs/contracts.md).

``CaptionDataset`` is a map-style dataset indexed by a Lhotse ``CutSet`` (one mini-batch, as
yielded by a Lhotse sampler). It loads and resamples audio, downmixes to mono, picks one caption
per clip, tokenises it and pads everything into::

    audio (B, S) float32     audio_lens (B,) samples      duration: float (seconds in batch)
    text_tokens (B, L) long  text_lens (B,)               captions: list[str]
    cut_ids: list[str]       labels: {task: list[str | None]}
    num_skipped: int         skipped_ids: list[str]

Clips whose audio is missing or unreadable are skipped and reported in ``num_skipped`` /
``skipped_ids`` (the trainer sums and logs them) with a warning naming the cut — never a crash.
"""

from __future__ import annotations

import logging
import random
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from lhotse import CutSet
from lhotse.cut import Cut

from toolkit.audio import cut_mono
from toolkit.data.cuts import cut_captions, cut_labels
from toolkit.data.shar import with_shar_audio

log = logging.getLogger(__name__)


def stable_rng(*keys: Any) -> random.Random:
    """A ``random.Random`` seeded from ``keys`` (stable across processes and Python runs)."""
    return random.Random(zlib.crc32(repr(keys).encode()))


def load_mono(cut: Cut, sampling_rate: int) -> np.ndarray:
    """Audio of ``cut`` averaged over channels and resampled to ``sampling_rate`` → ``(S,)``
    (:func:`toolkit.audio.cut_mono`; NaN/Inf or empty audio raises ``AudioLoadError``). Cuts
    streamed from Shar get their audio bytes from the tar here (:mod:`toolkit.data.shar`)."""
    return cut_mono(with_shar_audio(cut), sampling_rate)


def pad_stack(arrays: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """List of ``(S_i,)`` arrays → ``(B, max S)`` zero-padded tensor and ``(B,)`` lengths."""
    lens = torch.tensor([len(a) for a in arrays], dtype=torch.long)
    out = torch.zeros(len(arrays), int(lens.max()) if arrays else 0)
    for i, a in enumerate(arrays):
        out[i, : len(a)] = torch.from_numpy(a)
    return out, lens


class CaptionDataset(torch.utils.data.Dataset):
    """Loads one sampler mini-batch (a CutSet) into a batch dict.

    Args:
        tokenizer: object with ``encode_batch(list[str]) -> (ids (B,L), lens (B,))``; None → no
            ``text_tokens`` in the batch.
        sampling_rate: target rate in Hz; audio at any rate/channel count is converted.
        max_clip_duration: longer clips are cropped to this many seconds (train: random offset
            chosen deterministically from seed/epoch/cut id; eval: from the start). None → whole.
        caption_choice: ``"random"`` picks one caption per clip per epoch (deterministic from
            seed/epoch/cut id, so resume is exact); ``"first"`` always the first.
        seed: seed of those choices; :meth:`set_epoch` changes them every epoch.
        require_caption: skip (and count) clips without a caption; False keeps them with an
            empty caption ``""`` (evaluation corpora that carry labels only).
    """

    def __init__(
        self,
        tokenizer: Any = None,
        sampling_rate: int = 16000,
        max_clip_duration: float | None = None,
        caption_choice: str = "random",
        seed: int = 0,
        train: bool = True,
        require_caption: bool = True,
    ) -> None:
        self.tokenizer = tokenizer
        self.sampling_rate = sampling_rate
        self.max_clip_duration = max_clip_duration
        self.caption_choice = caption_choice
        self.seed = seed
        self.train = train
        self.require_caption = require_caption
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _crop(self, cut: Cut) -> Cut:
        if self.max_clip_duration is None or cut.duration <= self.max_clip_duration:
            return cut
        offset = 0.0
        if self.train:
            rng = stable_rng(self.seed, self.epoch, cut.id, "crop")
            offset = rng.uniform(0.0, cut.duration - self.max_clip_duration)
        return cut.truncate(offset=offset, duration=self.max_clip_duration, preserve_id=True)

    def __getitem__(self, cuts: CutSet) -> dict[str, Any]:
        audios, captions, ids, kept, skipped = [], [], [], [], []
        for cut in cuts:
            try:
                audio = load_mono(self._crop(cut), self.sampling_rate)
            except Exception as e:  # missing file, corrupt data, unsupported codec, ...
                log.warning("skipping cut %s: cannot load audio: %s", cut.id, _short(e))
                skipped.append(cut.id)
                continue
            caps = cut_captions(cut)
            if not caps and self.require_caption:
                log.warning("skipping cut %s: no caption", cut.id)
                skipped.append(cut.id)
                continue
            if not caps:
                cap = ""
            elif self.caption_choice == "random":
                cap = stable_rng(self.seed, self.epoch, cut.id, "caption").choice(caps)
            else:
                cap = caps[0]
            audios.append(audio)
            captions.append(cap)
            ids.append(cut.id)
            kept.append(cut)
        audio, audio_lens = pad_stack(audios)
        batch: dict[str, Any] = {
            "audio": audio,
            "audio_lens": audio_lens,
            "duration": float(audio_lens.sum()) / self.sampling_rate,
            "captions": captions,
            "cut_ids": ids,
            "labels": collect_labels(kept),
            "num_skipped": len(skipped),
            "skipped_ids": skipped,
        }
        if self.tokenizer is not None and captions:
            batch["text_tokens"], batch["text_lens"] = self.tokenizer.encode_batch(captions)
        return batch


def collect_labels(cuts: Sequence[Cut]) -> dict[str, list[Any]]:
    """``{task: [label or None per cut]}`` over the probe labels present in ``cuts``."""
    per_cut = [cut_labels(c) for c in cuts]
    tasks = sorted({t for labels in per_cut for t in labels})
    return {t: [labels.get(t) for labels in per_cut] for t in tasks}


def _short(e: Exception) -> str:
    text = f"{type(e).__name__}: {e}".splitlines()[0]
    return text[:200]
