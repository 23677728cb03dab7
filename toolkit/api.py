"""Use a trained model on your own audio: ``toolkit.load(path)``.

>>> m = toolkit.load("exp/contrastive")            # a run dir, an exported dir, a model.pt
>>> a = m.embed_audio(["dog.wav", "rain.flac"])    # (2, E) joint space, L2-normalised
>>> t = m.embed_text(["a dog barks", "rain"])      # (2, E)
>>> m.similarity(["dog.wav"], ["a dog barks", "rain"])          # (1, 2) cosine
>>> r = m.zero_shot(["dog.wav"], ["dog", "rain", "speech"])     # r.probs (1, 3), r.labels
>>> m.caption(["dog.wav"])                          # captioning / hybrid models
>>> m.search("my_index", "a dog barking in the rain", k=10)    # see toolkit.index

Audio: file paths (any format lhotse reads) or arrays ``(S,)``/``(C, S)`` with
``sampling_rate``; any rate and channel count (:mod:`toolkit.audio`). Long audio is windowed as
in :mod:`toolkit.inference` (clips up to ``window_seconds`` are encoded whole); a clip's joint
embedding is the objective's audio projection of all its frames, its encoder vector the mean of
its frames. Every clip is projected on its own, so a file gives the same vector on every call
and whatever the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from toolkit.audio import mono_at, read_audio
from toolkit.config import ConfigError
from toolkit.evaluate.zero_shot import (
    DEFAULT_TEMPLATES,
    TaskPrompts,
    class_embeddings,
    prompts_hash,
)
from toolkit.inference import DEFAULT_WINDOW, Embedding, Encoder
from toolkit.runs import Run, open_run
from toolkit.schema import data_config, eval_config

AudioInput = str | Path | np.ndarray | Tensor


@dataclass
class ZeroShotResult:
    """Zero-shot tagging of N clips over C labels.

    Attributes:
        probs: ``(N, C)`` softmax over labels of ``scale * cosine`` (the model's learned scale).
        scores: ``(N, C)`` cosine similarities with the template-averaged label embeddings.
        labels: the C labels; ``templates``: the prompt templates; ``prompts_hash``: the
            prompt set's hash (:func:`toolkit.evaluate.zero_shot.prompts_hash`: templates and
            class names), the same the ``zero_shot`` evaluator records beside its numbers.
    """

    probs: Tensor
    scores: Tensor
    labels: list[str]
    templates: list[str]
    prompts_hash: str

    def top(self, i: int) -> str:
        """The best label of clip ``i``."""
        return self.labels[int(self.probs[i].argmax())]


class Model:
    """A trained model: audio and text embeddings, zero-shot tagging, captioning, search.

    Build it with :func:`load`. ``model`` is the :class:`toolkit.model.AudioModel` (eval mode),
    ``encoder`` the windowing :class:`toolkit.inference.Encoder` over its frontend + encoder,
    ``objective`` the objective (None for an encoder-only released model), ``run`` the
    :class:`toolkit.runs.Run` it came from.
    """

    def __init__(self, run: Run, device: str = "cpu", window_seconds: float | None = None) -> None:
        self.run = run
        cfg = run.config
        self.model: Any = None
        self.tokenizer = None
        if cfg.get("objective"):
            self.tokenizer = run.tokenizer() if cfg.get("tokenizer") else None
            self.model = run.model(self.tokenizer)
            frontend, encoder = self.model.frontend, self.model.encoder
            self.objective = self.model.objective
        else:  # an encoder-only model (a released encoder): embeddings in the encoder space
            frontend, encoder, _ = run.audio_modules()
            self.objective = None
        sr = int(getattr(frontend, "sampling_rate", data_config(cfg).sampling_rate))
        window = window_seconds or eval_config(cfg).max_clip_duration or DEFAULT_WINDOW
        self.encoder = Encoder(frontend, encoder, sr, window, device=device)
        if self.objective is not None:
            self.objective.to(device).eval()
        self.sampling_rate = sr
        self.model_id = run.model_id()

    @property
    def has_joint_space(self) -> bool:
        obj = self.objective
        return hasattr(obj, "embed_audio") and hasattr(obj, "embed_text")

    @property
    def can_caption(self) -> bool:
        return hasattr(self.objective, "generate")

    # ---- audio

    def load_audio(self, audio: AudioInput, sampling_rate: int | None = None) -> Tensor:
        """A file (any format, rate, channels) or an array at ``sampling_rate`` → ``(S,)``
        float32 at the model's rate (:mod:`toolkit.audio`; ``AudioLoadError`` names a bad
        file)."""
        if isinstance(audio, (str, Path)):
            x, sr = read_audio(audio)
            return mono_at(x, sr, self.sampling_rate, f"audio file '{audio}'")
        if sampling_rate is None:
            raise ValueError("in-memory audio needs sampling_rate=")
        return mono_at(audio, sampling_rate, self.sampling_rate, "audio")

    def frames(
        self, audio: AudioInput | Sequence[AudioInput], sampling_rate: int | None = None
    ) -> list[Embedding]:
        """Frame-level encoder outputs of each clip (:class:`toolkit.inference.Embedding`)."""
        items = _as_list(audio)
        mono = [self.load_audio(a, sampling_rate) for a in items]
        ids = [str(a) if isinstance(a, (str, Path)) else "" for a in items]
        return self.encoder._embed_mono(mono, 200.0, ids)

    @torch.no_grad()
    def embed_audio(
        self,
        audio: AudioInput | Sequence[AudioInput],
        sampling_rate: int | None = None,
        space: Literal["auto", "joint", "encoder"] = "auto",
    ) -> Tensor:
        """``(N, E)`` embeddings of N clips: the joint audio-text space (L2-normalised) for a
        model that has one (``auto``/``joint``), else the mean of the encoder frames
        (``encoder``)."""
        if space == "auto":
            space = "joint" if self.has_joint_space else "encoder"
        embs = self.frames(audio, sampling_rate)
        if space == "encoder":
            return torch.stack([e.pooled for e in embs])
        if not self.has_joint_space:
            raise ConfigError(
                f"embed_audio(space='joint'): the {self._objective_name()} objective has no "
                "joint audio-text space; use space='encoder'"
            )
        dev = self.encoder.device
        out = [
            self.objective.embed_audio(e.frames[None].to(dev), torch.tensor([len(e.frames)]))[0]
            for e in embs
        ]
        return torch.stack(out).float().cpu()

    # ---- text

    @torch.no_grad()
    def embed_text(self, texts: str | Sequence[str], batch_size: int = 256) -> Tensor:
        """``(M, E)`` L2-normalised text embeddings in the joint space."""
        if not self.has_joint_space:
            raise ConfigError(
                f"embed_text: the {self._objective_name()} objective has no text tower"
            )
        texts = [texts] if isinstance(texts, str) else list(texts)
        dev = self.encoder.device
        out = []
        for i in range(0, len(texts), batch_size):
            ids, lens = self.tokenizer.encode_batch(texts[i : i + batch_size])
            out.append(self.objective.embed_text(ids.to(dev), lens.to(dev)).float().cpu())
        return torch.cat(out)

    def similarity(
        self,
        audio: AudioInput | Sequence[AudioInput],
        texts: str | Sequence[str],
        sampling_rate: int | None = None,
    ) -> Tensor:
        """``(N, M)`` cosine similarities of N clips and M texts."""
        return self.embed_audio(audio, sampling_rate, "joint") @ self.embed_text(texts).t()

    def zero_shot(
        self,
        audio: AudioInput | Sequence[AudioInput],
        labels: Sequence[str],
        template: str | None = None,
        templates: Sequence[str] | None = None,
        sampling_rate: int | None = None,
        class_names: dict[str, str] | None = None,
    ) -> ZeroShotResult:
        """Which of ``labels`` fits each clip. Each label is embedded through every template
        (``{label}`` replaced; default: the evaluation's five templates) and the embeddings
        averaged, exactly as the ``zero_shot`` evaluator does. ``class_names`` maps a label to
        the name used in its prompts (a recipe's ``<task>.classes.tsv``)."""
        if template is not None and templates is not None:
            raise ValueError("give template= or templates=, not both")
        tpl = [template] if template is not None else list(templates or DEFAULT_TEMPLATES)
        bad = [t for t in tpl if "{label}" not in t]
        if bad:
            raise ValueError(f"every template needs {{label}}, got {bad}")
        labels = list(labels)
        if not labels:
            raise ValueError("zero_shot needs at least one label")
        audio_emb = self.embed_audio(audio, sampling_rate, "joint")
        prompts = TaskPrompts(tpl, dict(class_names or {}))
        cls = class_embeddings(self.embed_text, "", labels, prompts)
        scores = audio_emb @ cls.t()
        probs = torch.softmax(self._scale() * scores, dim=-1)
        names = {lab: prompts.name_of(lab) for lab in labels}
        return ZeroShotResult(probs, scores, labels, tpl, prompts_hash(tpl, names))

    def _scale(self) -> float:
        obj = getattr(self.objective, "contrastive", self.objective)
        scale = getattr(obj, "scale", None)
        with torch.no_grad():
            return float(scale()) if callable(scale) else 1.0

    # ---- captions

    @torch.no_grad()
    def caption(
        self,
        audio: AudioInput | Sequence[AudioInput],
        sampling_rate: int | None = None,
        method: str = "beam",
        beam: int = 4,
        max_len: int = 30,
        **options: Any,
    ) -> list[str]:
        """One caption per clip from the model's decoder (captioning or hybrid objective).
        ``method``: ``beam`` (``beam`` hypotheses), ``greedy`` or ``nucleus``; ``options`` go
        to :mod:`toolkit.decoders.generation`."""
        if not self.can_caption:
            raise ConfigError(
                f"caption: the {self._objective_name()} objective has no decoder; captioning "
                "needs a model pretrained with the captioning or hybrid objective"
            )
        if method == "beam":
            options.setdefault("beam_size", beam)
        dev = self.encoder.device
        out: list[str] = []
        for e in self.frames(audio, sampling_rate):
            lens = torch.tensor([len(e.frames)], device=dev)
            out += self.objective.generate(
                e.frames[None].to(dev), lens, self.tokenizer, method, max_len=max_len, **options
            )
        return out

    # ---- search

    def search(self, index: Any, query: str | Sequence[str], k: int = 10) -> Any:
        """Top-``k`` clips of an index (:class:`toolkit.index.AudioIndex` or its directory) for
        a text query (a list of queries: a list of hit lists)."""
        from toolkit.index import AudioIndex

        if not isinstance(index, AudioIndex):
            index = AudioIndex.open(index)
        if index.model_id != self.model_id:
            raise ConfigError(
                f"index {index.root} was built with model {index.model_id}, not this model "
                f"({self.model_id}); rebuild it with toolkit-index"
            )
        q = self.embed_text([query] if isinstance(query, str) else list(query)).numpy()
        hits = index.search(q, k)
        return hits[0] if isinstance(query, str) else hits

    def _objective_name(self) -> str:
        return str((self.run.config.get("objective") or {}).get("name", "?"))


def _as_list(audio: AudioInput | Sequence[AudioInput]) -> list[AudioInput]:
    """One path or array (``(S,)`` or ``(C, S)``: one clip) → ``[it]``; a sequence → a list."""
    if isinstance(audio, (str, Path, np.ndarray, Tensor)):
        return [audio]
    return list(audio)


def load(
    path: str | Path,
    device: str = "cpu",
    checkpoint: str | Path | None = None,
    window_seconds: float | None = None,
    overrides: Sequence[str] = (),
    icefall_hparams: str | Path | dict | None = None,
    text_tower: str | Path | None = None,
) -> Model:
    """Load a model: a toolkit run dir, an exported model dir, a weights file inside one, an
    Auden model dir (``config.json`` + weights; a CLAP dir whose tokenizer files are elsewhere
    takes ``text_tower=`` a local Hugging Face folder), or an icefall checkpoint with
    ``icefall_hparams`` (see :func:`toolkit.runs.open_run` / :func:`toolkit.runs.release_run`)."""
    run = open_run(
        path, checkpoint, overrides=list(overrides), icefall_hparams=icefall_hparams,
        text_tower=text_tower,
    )  # fmt: skip
    return Model(run, device, window_seconds)


from_pretrained = load  # the name Hugging Face / open_clip users look for


__all__ = ["Model", "ZeroShotResult", "from_pretrained", "load"]
