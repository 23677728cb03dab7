"""Embedding export: a trained run's frozen frontend + encoder as an audio → embeddings API.

>>> enc = load_encoder("exp/demo")                     # <run>/config.yaml + model.pt
>>> e = enc.embed(waveform, sampling_rate=44100)         # any rate, any channel count
>>> e.frames.shape, e.pooled.shape, e.times[:2]          # (T', D), (D,), seconds
>>> res = enc.embed_files(["a.wav", "b.flac"])           # batched, tqdm progress bar

Audio → model input: channels are averaged (mono), then the signal is resampled to the run's
``sampling_rate`` with a windowed-sinc resampler (``torchaudio.functional.resample`` when
torchaudio imports, otherwise lhotse's copy of the same algorithm: Hann-windowed sinc,
``lowpass_filter_width=6``, ``rolloff=0.99``; see :func:`resample`).

Long audio is cut into windows of ``window_seconds`` (default: the run's
``eval.max_clip_duration``, 30 s when that is null) starting every ``hop_seconds`` (default:
``window - min(1 s, window / 2)``, rounded down to a whole number of encoder frames). Window
starts therefore lie on the encoder's frame grid, and encoder frame ``i`` of the window starting
at grid frame ``g0`` is grid frame ``g = g0 + i`` centred at ``frame_offset + g / frame_rate``
seconds (``frame_offset``: measured, see :class:`Encoder`). Where two windows overlap, grid frames before the middle of the overlap
come from the earlier window and the rest from the later one, so every grid frame is produced
once, by the window in which it has more context. A clip no longer than one window is encoded
whole, exactly as stage-5 evaluation encodes it. ``pooled`` is the mean of all returned frames
of the clip. See docs/extract.md.

Batches pad clips together; all built-in encoders give the same valid frames whatever the
padding (verified in test/test_inference.py), so results do not depend on batch size or
neighbours; ``batched=False`` encodes one window at a time for an encoder that is not
padding-invariant.
"""

from __future__ import annotations

import functools
import json
import logging
import math
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from toolkit.audio import (
    AudioLoadError,
    Window,
    mono_at,
    read_audio,
    read_cut,
    reason,
    window_plan,
)
from toolkit.data.dataset import pad_stack
from toolkit.runs import open_run
from toolkit.schema import data_config, eval_config

log = logging.getLogger(__name__)

# Audio lengths (s) probed at load time: the shortest one giving a frame is ``min_seconds``;
# the frame rate is the frame-count slope between the two RATE_PROBE lengths; the frame offset
# is half the audio the frames leave unspanned, averaged over OFFSET_PROBES lengths.
LENGTH_LADDER = (0.025, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6)
RATE_PROBE = (3.2, 6.4)
CLICK_STEPS = 33  # click positions over +-2 frame periods (the frame-offset probe)
DEFAULT_WINDOW = 30.0


# --------------------------------------------------------------------------- results


@dataclass
class Embedding:
    """Embeddings of one clip.

    Attributes:
        frames: ``(T', D)`` float32 encoder outputs (CPU), one per encoder frame.
        pooled: ``(D,)`` float32 mean of ``frames``.
        times: ``(T',)`` float64 centre time of each frame in seconds from the clip start.
        duration: clip length in seconds (at the model's sampling rate).
        id: file path or cut id (empty for in-memory audio).
    """

    frames: Tensor
    pooled: Tensor
    times: Tensor
    duration: float
    id: str = ""


@dataclass
class EmbeddingResults:
    """Per-item results of a batch call, in input order; ``failed`` maps the ids of items that
    could not be read (``on_error="skip"``) to the reason."""

    items: list[Embedding]
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def ids(self) -> list[str]:
        return [e.id for e in self.items]

    def pooled(self) -> Tensor:
        """``(N, D)`` pooled vectors of the items that were read."""
        return torch.stack([e.pooled for e in self.items])

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Embedding]:
        return iter(self.items)

    def __getitem__(self, i: int) -> Embedding:
        return self.items[i]


# --------------------------------------------------------------------------- the encoder


class Encoder(nn.Module):
    """A run's frontend + encoder in eval mode: audio → frame and clip embeddings.

    Args:
        frontend: ``(audio (B,S), lens) -> (features (B,T,F), lens)`` module.
        encoder: ``(features, lens) -> (hidden (B,T',D), lens)`` module with ``output_dim``.
        sampling_rate: the rate the frontend expects (Hz).
        window_seconds: longest audio encoded in one call; longer clips are windowed.
        hop_seconds: window start spacing; None → ``window - min(1, window / 2)``.
        batched: False encodes one window per call (for encoders that are not
            padding-invariant).
        device: where the modules run.
        pad_end: append ``frame_offset + 2 / frame_rate`` s of zeros to the last window of
            every clip so that frames reach its end (the last frame is centred within one hop
            of it; frames centred past the end are dropped). Windows are planned on the clip
            itself, so a clip no longer than one window is still encoded whole. Off by default (then a clip within one window
            gives exactly the stage-5 evaluation frames); the HEAR API turns it on.

    Attributes measured at construction (batched forwards of probe audio):
    ``frame_rate`` (encoder frames per second: the frame-count slope between 3.2 and 6.4 s),
    ``frame_offset`` (centre of frame 0 in seconds, measured with a click: the click position,
    swept over +-2 frame periods, that changes a middle frame most, minus that frame's start
    ``j / frame_rate``; it depends on the trained weights: 22.9 ms for the demo's contrastive
    transformer; see :meth:`_click_offset`), ``min_seconds``
    (shortest of 25 ms, 50 ms, ..., 1.6 s giving one frame; shorter windows are zero-padded to
    it). ``output_dim`` is the embedding size ``D``.
    """

    def __init__(
        self,
        frontend: nn.Module,
        encoder: nn.Module,
        sampling_rate: int = 16000,
        window_seconds: float = DEFAULT_WINDOW,
        hop_seconds: float | None = None,
        batched: bool = True,
        device: str | torch.device = "cpu",
        pad_end: bool = False,
    ) -> None:
        super().__init__()
        self.frontend = frontend
        self.encoder = encoder
        self.sampling_rate = int(sampling_rate)
        self.output_dim = int(encoder.output_dim)
        self.batched = batched
        self.pad_end = pad_end
        self.run_dir = self.checkpoint = ""  # set by load_encoder
        self.eval().to(device)
        self.frame_rate, self.frame_offset, self.min_seconds = self._probe()
        if window_seconds * self.frame_rate < 1 or window_seconds < self.min_seconds:
            raise ValueError(
                f"window_seconds={window_seconds} is shorter than one encoder frame "
                f"(frame rate {self.frame_rate:g}/s, min {self.min_seconds} s of audio)"
            )
        self.window_seconds = float(window_seconds)
        if hop_seconds is None:
            hop_seconds = self.window_seconds - min(1.0, self.window_seconds / 2)
        hop_frames = max(1, int(math.floor(hop_seconds * self.frame_rate + 1e-6)))
        self.hop_seconds = hop_frames / self.frame_rate
        if self.hop_seconds > self.window_seconds + 1e-9:
            raise ValueError(f"hop_seconds={hop_seconds} exceeds window_seconds={window_seconds}")

    @property
    def device(self) -> torch.device:
        for t in self.parameters():
            return t.device
        for t in self.buffers():
            return t.device
        return torch.device("cpu")

    def train(self, mode: bool = True) -> Encoder:
        """Always eval mode: no dropout, no dither, no augmentation (``mode`` is ignored)."""
        return super().train(False)

    @torch.no_grad()
    def encode_batch(self, audio: Tensor, audio_lens: Tensor) -> tuple[Tensor, Tensor]:
        """``(B, S)`` float audio at ``sampling_rate`` + ``(B,)`` lengths → encoder output
        ``(B, T', D)`` and valid frame counts ``(B,)`` (no windowing)."""
        dev = self.device
        feats, lens = self.frontend(audio.to(dev), audio_lens.to(dev))
        return self.encoder(feats, lens)

    def _probe(self) -> tuple[float, float, float]:
        sr = self.sampling_rate
        gen = torch.Generator().manual_seed(0)

        def frames(seconds: Sequence[float]) -> list[int]:
            lens = torch.tensor([int(round(s * sr)) for s in seconds])
            audio = 0.1 * torch.randn(len(seconds), int(lens.max()), generator=gen)
            audio *= torch.arange(audio.shape[1])[None] < lens[:, None]
            return [int(n) for n in self.encode_batch(audio, lens)[1].tolist()]

        lo, hi = frames(RATE_PROBE)
        rate = (hi - lo) / (RATE_PROBE[1] - RATE_PROBE[0])
        if rate <= 0:
            raise ValueError("the encoder's frame count does not grow with the audio length")
        ladder = frames(LENGTH_LADDER)
        ok = [s for s, n in zip(LENGTH_LADDER, ladder) if n > 0]
        if not ok:
            raise ValueError(f"the encoder gives no frame for {LENGTH_LADDER[-1]} s of audio")
        return rate, round(max(self._click_offset(rate), 0.0), 6), ok[0]

    @torch.no_grad()
    def _click_offset(self, rate: float) -> float:
        """Centre of frame 0 in seconds, measured with a click: a one-sample click is swept over
        +-2 frame periods (``CLICK_STEPS`` positions) around a middle frame ``j`` of silence;
        the click position that changes frame ``j`` most (the peak, refined by a parabola
        through its neighbours) is taken as the frame's centre, so that an event at time ``t``
        is seen most strongly by the frame whose timestamp is nearest ``t``; the offset is that
        position minus ``j / rate``."""
        sr, period = self.sampling_rate, 1.0 / rate
        n = int(round(16 * period * sr))
        j = int(n / sr * rate / 2)
        guess = (j + 0.5) * period
        times = [guess + 2 * (k / (CLICK_STEPS // 2) - 1) * period for k in range(CLICK_STEPS)]
        audio = torch.zeros(len(times) + 1, n)
        for k, t in enumerate(times):
            audio[k + 1, int(round(t * sr))] = 0.5
        hidden, _ = self.encode_batch(audio, torch.full((len(audio),), n))
        resp = (hidden[1:, j].float() - hidden[:1, j].float()).norm(dim=-1).cpu()
        k = int(resp.argmax())
        step = times[1] - times[0]
        centre = times[k]
        if 0 < k < len(times) - 1:  # parabolic refinement of the peak
            a, b, c = float(resp[k - 1]), float(resp[k]), float(resp[k + 1])
            denom = a - 2 * b + c
            if denom < 0:
                centre += 0.5 * (a - c) / denom * step
        return centre - j * period

    # ---- in-memory audio

    def prepare(self, audio: Tensor | np.ndarray, sampling_rate: int) -> Tensor:
        """Any-rate ``(S,)`` / ``(C, S)`` float audio → ``(S,)`` float32 at ``sampling_rate``."""
        return mono_at(audio, sampling_rate, self.sampling_rate, "audio")

    def embed(self, audio: Tensor | np.ndarray, sampling_rate: int) -> Embedding:
        """One clip ``(S,)`` or ``(C, S)`` at ``sampling_rate`` Hz → :class:`Embedding`."""
        return self.embed_many([audio], sampling_rate)[0]

    def embed_many(
        self,
        clips: Sequence[Tensor | np.ndarray],
        sampling_rate: int,
        batch_duration: float = 200.0,
        ids: Sequence[str] | None = None,
    ) -> list[Embedding]:
        """Several in-memory clips (each as in :meth:`embed`), encoded in padded batches of at
        most ``batch_duration`` seconds (batch size × longest window)."""
        mono = [self.prepare(c, sampling_rate) for c in clips]
        return self._embed_mono(mono, batch_duration, ids)

    def _embed_mono(
        self, clips: list[Tensor], batch_duration: float, ids: Sequence[str] | None = None
    ) -> list[Embedding]:
        sr, fr = self.sampling_rate, self.frame_rate
        min_samples = int(round(self.min_seconds * sr))
        tail = int(round((self.frame_offset + 2 / fr) * sr)) if self.pad_end else 0
        jobs: list[tuple[int, Window]] = []
        segments: list[Tensor] = []
        for c, x in enumerate(clips):
            plan = window_plan(len(x), sr, fr, self.window_seconds, self.hop_seconds)
            for w in plan:  # windows are planned on the clip; the end padding joins the last
                seg = x[w.start : w.end]
                if tail and w is plan[-1]:
                    seg = nn.functional.pad(seg, (0, tail))
                if len(seg) < min_samples:  # too short for one frame: zero-pad
                    seg = nn.functional.pad(seg, (0, min_samples - len(seg)))
                jobs.append((c, w))
                segments.append(seg)
        outputs = self._encode_segments(segments, batch_duration)
        parts: list[list[tuple[Tensor, Tensor]]] = [[] for _ in clips]
        for (c, w), h in zip(jobs, outputs):
            g = w.first + torch.arange(len(h))
            keep = g >= w.keep_from
            if w.keep_to is not None:
                keep &= g < w.keep_to
            parts[c].append((h[keep], g[keep]))
        out = []
        for c, x in enumerate(clips):
            frames = torch.cat([h for h, _ in parts[c]])
            grid = torch.cat([g for _, g in parts[c]])
            times = self.frame_offset + grid.double() / fr
            duration = len(x) / sr
            inside = times <= duration + 1e-9  # frames centred in zero-padding past the end
            if not bool(inside.all()):
                if not bool(inside.any()):  # a clip shorter than frame 0's centre
                    inside[0] = True
                    times = times.clamp(max=duration)
                frames, times = frames[inside], times[inside]
            out.append(
                Embedding(
                    frames=frames,
                    pooled=frames.mean(dim=0),
                    times=times,
                    duration=duration,
                    id=ids[c] if ids is not None else "",
                )
            )
        return out

    def _encode_segments(self, segments: list[Tensor], batch_duration: float) -> list[Tensor]:
        """Encode 1-D segments in length-sorted padded batches → valid frames ``(n_i, D)``."""
        limit = max(1, int(batch_duration * self.sampling_rate))
        order = sorted(range(len(segments)), key=lambda i: -len(segments[i]))
        out: list[Tensor | None] = [None] * len(segments)
        i = 0
        while i < len(order):
            longest = len(segments[order[i]])
            size = 1
            if self.batched:
                size = max(1, min(len(order) - i, limit // max(longest, 1)))
            idx = order[i : i + size]
            audio, lens = pad_stack([segments[j].numpy() for j in idx])
            hidden, hlens = self.encode_batch(audio, lens)
            hidden = hidden.float().cpu()
            for b, j in enumerate(idx):
                out[j] = hidden[b, : int(hlens[b])].clone()
            i += size
        return out  # type: ignore[return-value]

    # ---- files and cuts

    def iter_embeddings(
        self,
        sources: Iterable[tuple[str, Callable[[], tuple[np.ndarray, int]]]],
        batch_duration: float = 200.0,
        progress: bool = True,
        on_error: Literal["raise", "skip"] = "raise",
        num_workers: int = 0,
        total: int | None = None,
        desc: str = "embed",
    ) -> Iterator[tuple[str, Embedding | AudioLoadError]]:
        """Stream ``(id, Embedding)`` in input order for ``(id, loader)`` pairs, where
        ``loader() -> (audio (C, S) or (S,), sampling_rate)``.

        Clips are read (``num_workers`` threads; 0: in this thread) until ``batch_duration``
        seconds are pending, then encoded together. A loader error raises
        :class:`AudioLoadError` (``on_error="raise"``) or is yielded as ``(id, error)``
        (``"skip"``).
        """
        limit = batch_duration * self.sampling_rate
        pending: list[tuple[str, Tensor | AudioLoadError]] = []
        samples = 0
        bar = tqdm(total=total, desc=desc, unit="clip", disable=not progress, mininterval=2)

        def flush() -> Iterator[tuple[str, Embedding | AudioLoadError]]:
            ok = [(i, x) for i, x in pending if isinstance(x, Tensor)]
            embs = iter(self._embed_mono([x for _, x in ok], batch_duration, [i for i, _ in ok]))
            for cid, x in pending:
                yield cid, (next(embs) if isinstance(x, Tensor) else x)
            bar.update(len(pending))

        try:
            for cid, item in _prefetch(sources, self._load_source, num_workers):
                if isinstance(item, AudioLoadError) and on_error == "raise":
                    raise item
                pending.append((cid, item))
                samples += len(item) if isinstance(item, Tensor) else 0
                if samples >= limit:
                    yield from flush()
                    pending, samples = [], 0
            if pending:
                yield from flush()
        finally:
            bar.close()

    def _load_source(
        self, cid: str, loader: Callable[[], tuple[np.ndarray, int]]
    ) -> Tensor | AudioLoadError:
        try:
            audio, sr = loader()
            return self.prepare(audio, sr)
        except AudioLoadError as e:
            return e
        except Exception as e:
            return AudioLoadError(f"cannot read audio of '{cid}': {reason(e)}")

    def embed_files(
        self,
        paths: Sequence[str | Path],
        batch_duration: float = 200.0,
        progress: bool = True,
        on_error: Literal["raise", "skip"] = "raise",
        num_workers: int = 0,
    ) -> EmbeddingResults:
        """Audio files → per-file :class:`Embedding` (``id`` = the path as given)."""
        sources = [(str(p), functools.partial(read_audio, p)) for p in paths]
        return _collect(
            self.iter_embeddings(
                sources, batch_duration, progress, on_error, num_workers, len(sources), "files"
            )
        )

    def embed_cuts(
        self,
        cuts: Iterable[Any],
        batch_duration: float = 200.0,
        progress: bool = True,
        on_error: Literal["raise", "skip"] = "raise",
        num_workers: int = 0,
    ) -> EmbeddingResults:
        """Lhotse cuts (a ``CutSet`` or any iterable of cuts) → per-cut :class:`Embedding`
        (``id`` = ``cut.id``); the whole cut is embedded (no crop)."""
        total = len(cuts) if hasattr(cuts, "__len__") and not _is_lazy(cuts) else None
        return _collect(
            self.iter_embeddings(
                cut_sources(cuts), batch_duration, progress, on_error, num_workers, total, "cuts"
            )
        )


def cut_sources(
    cuts: Iterable[Any],
) -> Iterator[tuple[str, Callable[[], tuple[np.ndarray, int]]]]:
    """``(cut.id, loader)`` pairs for :meth:`Encoder.iter_embeddings`."""
    for cut in cuts:
        yield cut.id, functools.partial(read_cut, cut)


def _is_lazy(cuts: Any) -> bool:
    return bool(getattr(cuts, "is_lazy", False))


def _prefetch(
    sources: Iterable[tuple[str, Callable[[], tuple[np.ndarray, int]]]],
    load: Callable[[str, Callable[[], tuple[np.ndarray, int]]], Tensor | AudioLoadError],
    num_workers: int,
) -> Iterator[tuple[str, Tensor | AudioLoadError]]:
    """``(id, load(id, loader))`` in order; ``num_workers > 0`` reads ahead in threads (at most
    ``4 * num_workers`` clips in flight)."""
    if num_workers <= 0:
        for cid, loader in sources:
            yield cid, load(cid, loader)
        return
    with ThreadPoolExecutor(num_workers) as ex:
        queue: deque = deque()
        for cid, loader in sources:
            queue.append((cid, ex.submit(load, cid, loader)))
            if len(queue) >= 4 * num_workers:
                c, fut = queue.popleft()
                yield c, fut.result()
        while queue:
            c, fut = queue.popleft()
            yield c, fut.result()


def _collect(stream: Iterator[tuple[str, Embedding | AudioLoadError]]) -> EmbeddingResults:
    res = EmbeddingResults([])
    for cid, item in stream:
        if isinstance(item, Embedding):
            res.items.append(item)
        else:
            res.failed[cid] = str(item)
            log.warning("skipped %s", item)
    if res.failed:
        log.warning("%d items could not be read and were left out", len(res.failed))
    return res


# --------------------------------------------------------------------------- loading a run


def load_encoder(
    run_dir: str | Path,
    device: str | torch.device = "cpu",
    checkpoint: str | Path | None = None,
    window_seconds: float | None = None,
    hop_seconds: float | None = None,
    batched: bool = True,
    overrides: Sequence[str] = (),
    pad_end: bool = False,
) -> Encoder:
    """The frozen frontend + encoder of a training run.

    Args:
        run_dir: run directory (``config.yaml`` + ``model.pt`` or ``checkpoints/``), an
            exported model directory, or a weights file inside one (:func:`toolkit.runs.open_run`:
            the run's own files win over the cwd).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        checkpoint: a specific ``.pt`` file; None → ``model.pt``, else the newest loadable
            checkpoint.
        window_seconds: None → the run's ``eval.max_clip_duration`` (30 s when null).
        hop_seconds: None → ``window - min(1 s, window / 2)`` (frame-aligned).
        batched: False → one window per encoder call.
        overrides: dotted config overrides (e.g. ``frontend.stats_file=/x.pt``).
        pad_end: see :class:`Encoder` (frames up to the clip end; used by the HEAR API).
    """
    run = open_run(run_dir, checkpoint, overrides=list(overrides))
    frontend, encoder, _ = run.audio_modules()
    cfg, ckpt_path = run.config, run.weights_path()
    sr = int(getattr(frontend, "sampling_rate", data_config(cfg).sampling_rate))
    if window_seconds is None:
        window_seconds = eval_config(cfg).max_clip_duration or DEFAULT_WINDOW
    enc = Encoder(frontend, encoder, sr, window_seconds, hop_seconds, batched, device, pad_end)
    enc.run_dir, enc.checkpoint = str(run.dir), str(ckpt_path)
    log.info(
        "loaded %s: D=%d, %d Hz, %.4g frames/s (offset %.4g s), window %.4g s, hop %.4g s",
        ckpt_path,
        enc.output_dim,
        enc.sampling_rate,
        enc.frame_rate,
        enc.frame_offset,
        enc.window_seconds,
        enc.hop_seconds,
    )
    return enc


# --------------------------------------------------------------------------- on-disk format


class _NpyAppender:
    """Writes a ``.npy`` file row block by row block without knowing the row count in advance:
    a fixed-size header is reserved and filled in by :meth:`close`."""

    HEADER = 256

    def __init__(self, path: Path, dtype: Any, row_shape: tuple[int, ...]) -> None:
        self.path, self.dtype, self.row_shape = path, np.dtype(dtype), row_shape
        self.rows = 0
        self.f = open(path, "wb")  # closed in close()
        self.f.write(b"\0" * self.HEADER)

    def append(self, rows: np.ndarray) -> None:
        rows = np.ascontiguousarray(rows, dtype=self.dtype)
        if rows.shape[1:] != self.row_shape:
            raise ValueError(f"{self.path.name}: rows {rows.shape[1:]}, expected {self.row_shape}")
        self.f.write(rows.tobytes())
        self.rows += len(rows)

    def close(self) -> None:
        desc = {
            "descr": np.lib.format.dtype_to_descr(self.dtype),
            "fortran_order": False,
            "shape": (self.rows, *self.row_shape),
        }
        text = repr(desc)
        room = self.HEADER - 10 - 1
        if len(text) > room:
            raise ValueError("npy header does not fit")
        header = np.lib.format.magic(1, 0) + np.uint16(room + 1).tobytes()
        self.f.seek(0)
        self.f.write(header + (text + " " * (room - len(text)) + "\n").encode("latin1"))
        self.f.close()


class EmbeddingWriter:
    """Writes embeddings to a directory as they come (constant memory).

    Files: ``ids.txt`` (one id per line), ``pooled.npy`` ``(N, D)`` float32; with ``frames``:
    ``frames.npy`` ``(F, D)`` (all clips' frames stacked, ``frames_dtype``), ``frame_times.npy``
    ``(F,)`` float64 seconds, ``frame_offsets.npy`` ``(N + 1,)`` int64 (clip ``i`` owns rows
    ``offsets[i]:offsets[i+1]``); ``meta.json`` (written by :meth:`close`). Files are written
    under ``*.partial`` names and renamed when complete.
    """

    def __init__(
        self, out_dir: str | Path, dim: int, frames: bool = False, frames_dtype: str = "float32"
    ) -> None:
        self.dir = Path(out_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.frames = frames
        self.ids = open(self.dir / "ids.txt.partial", "w", encoding="utf-8")
        self.pooled = _NpyAppender(self.dir / "pooled.npy.partial", np.float32, (dim,))
        self.offsets = [0]
        if frames:
            self.frame_rows = _NpyAppender(self.dir / "frames.npy.partial", frames_dtype, (dim,))
            self.times = _NpyAppender(self.dir / "frame_times.npy.partial", np.float64, ())

    def add(self, emb: Embedding) -> None:
        if "\n" in emb.id or "\r" in emb.id:
            raise ValueError(f"id {emb.id!r} contains a line break")
        self.ids.write(emb.id + "\n")
        self.pooled.append(emb.pooled.numpy()[None])
        if self.frames:
            self.frame_rows.append(emb.frames.numpy())
            self.times.append(emb.times.numpy())
            self.offsets.append(self.offsets[-1] + len(emb.frames))

    def abort(self) -> None:
        """Close and delete the partial files (after an error)."""
        files = [self.ids, self.pooled.f] + (
            [self.frame_rows.f, self.times.f] if self.frames else []
        )
        for f in files:
            f.close()
            Path(f.name).unlink(missing_ok=True)

    def close(self, meta: dict[str, Any]) -> None:
        self.ids.close()
        self.pooled.close()
        names = ["ids.txt", "pooled.npy"]
        if self.frames:
            self.frame_rows.close()
            self.times.close()
            np.save(self.dir / "frame_offsets.npy.partial.npy", np.asarray(self.offsets, np.int64))
            (self.dir / "frame_offsets.npy.partial.npy").replace(
                self.dir / "frame_offsets.npy.partial"
            )
            names += ["frames.npy", "frame_times.npy", "frame_offsets.npy"]
        for n in names:
            (self.dir / f"{n}.partial").replace(self.dir / n)
        (self.dir / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")


def load_embeddings(out_dir: str | Path, mmap: bool = True) -> dict[str, Any]:
    """Read what :class:`EmbeddingWriter` (``toolkit.bin.extract``) wrote.

    Returns ``{"ids": list[str], "pooled": (N, D) array, "meta": dict}`` plus, when frames were
    written, ``"frames"`` / ``"times"``: lists of ``(T_i, D)`` / ``(T_i,)`` arrays (views of
    memory-mapped files when ``mmap``).
    """
    d = Path(out_dir)
    mode = "r" if mmap else None
    ids = (d / "ids.txt").read_text(encoding="utf-8").splitlines()
    out: dict[str, Any] = {
        "ids": ids,
        "pooled": np.load(d / "pooled.npy", mmap_mode=mode),
        "meta": json.loads((d / "meta.json").read_text()) if (d / "meta.json").is_file() else {},
    }
    if (d / "frames.npy").is_file():
        frames = np.load(d / "frames.npy", mmap_mode=mode)
        times = np.load(d / "frame_times.npy", mmap_mode=mode)
        off = np.load(d / "frame_offsets.npy")
        out["frames"] = [frames[off[i] : off[i + 1]] for i in range(len(ids))]
        out["times"] = [times[off[i] : off[i + 1]] for i in range(len(ids))]
    return out
