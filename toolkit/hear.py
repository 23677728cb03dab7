"""The HEAR 2021 common API over a training run (https://hearbenchmark.com/hear-api.html).

>>> import toolkit.hear as hear
>>> model = hear.load_model("exp/demo")                  # a run dir, or <run>/model.pt
>>> emb, ts = hear.get_timestamp_embeddings(audio, model)  # audio: (n_sounds, n_samples)
>>> scene = hear.get_scene_embeddings(audio, model)

``audio`` is mono float audio at ``model.sample_rate`` (the run's rate; no resampling here, as
the API requires). Timestamp embeddings are the encoder frames of
:class:`toolkit.inference.Encoder` (windowed for long audio, one regular frame grid) computed
with ``pad_end=True``, so frames reach the end of the audio; ``timestamps`` are the frame
centres ``frame_offset + i / frame_rate`` in **milliseconds** (``frame_offset`` is measured
with a click when the model loads: the frame that responds most to an event at time t is the
one whose timestamp is nearest t; e.g. 22.9 + 40 i ms for the demo's 25 frames/s
transformer). Scene embeddings are the mean of the timestamp embeddings. Outputs are
float32 tensors on the input's device. Validate with ``hear-validator toolkit.hear --model
exp/demo``. See docs/extract.md.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from toolkit.inference import Embedding, Encoder, load_encoder

ENV_VAR = "TOOLKIT_HEAR_MODEL"  # run dir used when load_model gets no path
HEAR_RATES = (16000, 22050, 44100, 48000)


class HearModel(nn.Module):
    """A HEAR ``Model``: wraps an :class:`Encoder` (moved with ``.to(device)``).

    Attributes: ``sample_rate`` (Hz), ``scene_embedding_size`` and ``timestamp_embedding_size``
    (both the encoder's ``output_dim``), ``batch_duration`` (seconds of padded audio per encoder
    call), ``encoder``.
    """

    def __init__(self, encoder: Encoder, batch_duration: float = 200.0) -> None:
        super().__init__()
        self.encoder = encoder
        self.sample_rate = int(encoder.sampling_rate)
        self.scene_embedding_size = int(encoder.output_dim)
        self.timestamp_embedding_size = int(encoder.output_dim)
        self.batch_duration = float(batch_duration)
        self.eval()

    def train(self, mode: bool = True) -> HearModel:
        """Always eval mode (``mode`` is ignored): embeddings never use dropout."""
        return super().train(False)

    def forward(self, audio: Tensor) -> Tensor:
        """Scene embeddings ``(n_sounds, D)`` (same as :func:`get_scene_embeddings`)."""
        return get_scene_embeddings(audio, self)


def load_model(model_file_path: str = "", **kwargs: Any) -> HearModel:
    """Load a run as a HEAR model.

    Args:
        model_file_path: run directory, or a ``.pt`` file inside one (``model.pt`` beside its
            ``config.yaml``, or ``checkpoints/checkpoint-N.pt``). Empty → the
            ``TOOLKIT_HEAR_MODEL`` environment variable.
        **kwargs: ``batch_duration`` (s, default 200) and any :func:`load_encoder` argument
            (``device``, ``checkpoint``, ``window_seconds``, ``hop_seconds``, ``batched``,
            ``overrides``, ``pad_end``: default True here).
    """
    path = model_file_path or os.environ.get(ENV_VAR, "")
    if not path:
        raise ValueError(
            f"load_model: give a run dir or model.pt path (or set {ENV_VAR}); "
            "this toolkit has no default weights"
        )
    batch_duration = float(kwargs.pop("batch_duration", 200.0))
    kwargs.setdefault("pad_end", True)
    model = HearModel(load_encoder(path, **kwargs), batch_duration)
    if model.sample_rate not in HEAR_RATES:
        warnings.warn(
            f"sample_rate {model.sample_rate} is not one of the HEAR rates {HEAR_RATES}",
            stacklevel=2,
        )
    return model


def _embed(audio: Tensor | np.ndarray, model: HearModel) -> list[Embedding]:
    x = torch.as_tensor(audio)
    if x.dim() != 2:
        raise ValueError(f"audio must be (n_sounds, n_samples), got shape {tuple(x.shape)}")
    return model.encoder.embed_many(list(x), model.sample_rate, model.batch_duration)


def get_timestamp_embeddings(audio: Tensor | np.ndarray, model: HearModel) -> tuple[Tensor, Tensor]:
    """``audio (n_sounds, n_samples)`` at ``model.sample_rate`` →
    ``(embeddings (n_sounds, n_timestamps, D) float32, timestamps (n_sounds, n_timestamps)
    float32 ms)``; frame ``i`` is centred at ``1000 * (frame_offset + i / frame_rate)`` ms."""
    device = audio.device if isinstance(audio, Tensor) else torch.device("cpu")
    embs = _embed(audio, model)
    if not embs:
        d = model.timestamp_embedding_size
        return torch.zeros(0, 0, d, device=device), torch.zeros(0, 0, device=device)
    frames = torch.stack([e.frames for e in embs]).float()
    stamps = (torch.stack([e.times for e in embs]) * 1000.0).float()
    return frames.to(device), stamps.to(device)


def get_scene_embeddings(audio: Tensor | np.ndarray, model: HearModel) -> Tensor:
    """``audio (n_sounds, n_samples)`` → ``(n_sounds, D)`` float32: the mean of each sound's
    timestamp embeddings."""
    device = audio.device if isinstance(audio, Tensor) else torch.device("cpu")
    embs = _embed(audio, model)
    if not embs:
        return torch.zeros(0, model.scene_embedding_size, device=device)
    return torch.stack([e.pooled for e in embs]).float().to(device)
