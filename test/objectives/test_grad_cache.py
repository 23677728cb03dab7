"""Gradient caching (objective.grad_cache_chunk): chunked, checkpointed towers give the same loss
and gradients as the whole batch, replay their random draws, advance a Zipformer's schedule once
per step, keep only embeddings between forward and backward, and refuse objectives that cannot
be split."""

from __future__ import annotations

import copy

import pytest
import torch
from fixtures import TINY_ZIPFORMER

from toolkit.config import ConfigError
from toolkit.encoders.transformer import TransformerEncoder
from toolkit.encoders.zipformer import ZipformerEncoder
from toolkit.frontends.fbank import Fbank
from toolkit.model import AudioModel, build_model
from toolkit.objectives.contrastive import Contrastive


class Tok:
    """The tokenizer attributes build_model reads."""

    vocab_size, pad_id, bos_id, eos_id = 30, 0, 1, 2


TEXT = {"name": "transformer", "dim": 32, "num_layers": 1, "num_heads": 2, "ff_dim": 64}


def batch(n: int = 6) -> dict:
    g = torch.Generator().manual_seed(1)
    lens = torch.randint(4000, 8000, (n,), generator=g)
    audio = torch.randn(n, 8000, generator=g) * (torch.arange(8000)[None] < lens[:, None])
    tlens = torch.randint(3, 9, (n,), generator=g)
    tokens = torch.randint(4, 30, (n, 9), generator=g) * (torch.arange(9)[None] < tlens[:, None])
    return {"audio": audio, "audio_lens": lens, "text_tokens": tokens, "text_lens": tlens}


def grads(model: torch.nn.Module) -> dict:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def transformer_model(chunk: int | None) -> AudioModel:
    torch.manual_seed(0)
    enc = TransformerEncoder(80, dim=32, num_layers=2, num_heads=2, ff_dim=64, dropout=0.0)
    obj = Contrastive(32, 30, {**TEXT, "dropout": 0.0}, embed_dim=16)
    return AudioModel(Fbank(), enc, obj, grad_cache_chunk=chunk).train()


def test_chunked_loss_and_gradients_equal_the_whole_batch():
    ref, cached = transformer_model(None), transformer_model(2)
    out_ref, out = ref(batch()), cached(batch())
    torch.testing.assert_close(out["loss"], out_ref["loss"], rtol=1e-6, atol=1e-7)
    out_ref["loss"].backward()
    out["loss"].backward()
    g_ref, g = grads(ref), grads(cached)
    assert g.keys() == g_ref.keys() and len(g) > 10
    for name in g_ref:
        torch.testing.assert_close(g[name], g_ref[name], rtol=1e-4, atol=1e-6, msg=name)


def zipformer_model() -> AudioModel:
    torch.manual_seed(0)
    # warmup_batches 100: layer/module skipping and feature masks all active
    enc = ZipformerEncoder(80, **TINY_ZIPFORMER, warmup_batches=100.0, dropout=0.1)
    obj = Contrastive(enc.output_dim, 30, {**TEXT, "dropout": 0.1}, embed_dim=16)
    return AudioModel(Fbank(), enc, obj, grad_cache_chunk=2).train()


def test_random_draws_are_replayed_and_the_schedule_advances_once():
    """With dropout, layer/module skipping and feature masks in play, the checkpointed chunks
    give the gradients of the same chunks run without checkpointing (same random draws), and
    the Zipformer's position advances by one per step, not per chunk or recomputation."""
    model = zipformer_model()
    manual = copy.deepcopy(model)
    b = batch()
    torch.manual_seed(7)
    model(b)["loss"].backward()
    assert int(model.encoder.batch_count) == 1

    torch.manual_seed(7)  # the same computation by hand, no checkpoint
    values = manual.encoder.schedule(b["audio"].device)
    audio, text = [], []
    for s in range(0, 6, 2):
        feats, lens = manual.features(b["audio"][s : s + 2], b["audio_lens"][s : s + 2])
        hidden, hlens = manual.encoder(feats, lens, schedule=values)
        audio.append(manual.objective.project_audio(hidden, hlens))
        text.append(
            manual.objective.project_text(b["text_tokens"][s : s + 2], b["text_lens"][s : s + 2])
        )
    out = manual.objective.loss_from_projections(torch.cat(audio), torch.cat(text))
    out["loss"].backward()
    g_ref, g = grads(manual), grads(model)
    assert g.keys() == g_ref.keys()
    for name in g_ref:
        torch.testing.assert_close(g[name], g_ref[name], rtol=1e-4, atol=1e-6, msg=name)


def saved_bytes(model: AudioModel, b: dict) -> int:
    """Bytes of the distinct non-parameter storages autograd keeps outside checkpointed regions
    (the chunks' inputs are views of the batch: one storage)."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t):
        key = t.untyped_storage().data_ptr()
        if key not in params:
            seen[key] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(b)["loss"].backward()
    return sum(seen.values())


def test_only_embeddings_wait_for_backward():
    """Between forward and backward the chunked model keeps the batch's waveforms and tokens and
    the (B, E) embeddings; the whole-batch model keeps every layer's activations."""
    b = batch(8)
    whole, chunked = saved_bytes(transformer_model(None), b), saved_bytes(transformer_model(2), b)
    inputs = b["audio"].untyped_storage().nbytes() + b["text_tokens"].untyped_storage().nbytes()
    assert chunked < inputs + 16_384 and chunked < 0.1 * whole


def test_objectives_that_do_not_split_are_refused():
    cfg = {
        "frontend": {"name": "fbank"},
        "encoder": {"name": "transformer", "dim": 32, "num_layers": 1, "num_heads": 2},
        "objective": {"name": "captioning", "grad_cache_chunk": 4},
    }
    with pytest.raises(ConfigError, match="grad_cache_chunk.*captioning.*supported: contrastive"):
        build_model(cfg, Tok())
    cfg["objective"] = {"name": "contrastive", "text_encoder": TEXT, "grad_cache_chunk": 0}
    with pytest.raises(ConfigError, match="positive integer"):
        build_model(cfg, Tok())
    cfg["objective"]["grad_cache_chunk"] = 4
    assert build_model(cfg, Tok()).grad_cache_chunk == 4


def test_batch_statistics_are_refused():
    """A batch-norm encoder would normalise per chunk and update its running statistics again in
    the recomputation: refused, naming the module."""
    cfg = {
        "frontend": {"name": "fbank"},
        "encoder": {"name": "cnn", "channels": [4, 8]},
        "objective": {"name": "contrastive", "text_encoder": TEXT, "grad_cache_chunk": 2},
    }
    with pytest.raises(ConfigError, match="grad_cache_chunk: encoder.*batch statistics"):
        build_model(cfg, Tok())


def test_an_objective_that_overrides_only_forward_is_refused():
    """A subclass whose loss lives in ``forward`` would silently get the parent's loss in the
    chunked path: refused. Overriding ``loss_from_projections`` (the demo's margin plugin) is fine."""
    from toolkit.registry import OBJECTIVES

    class OwnForward(Contrastive):
        def forward(self, encoder_out, encoder_lens, batch):
            return super().forward(encoder_out, encoder_lens, batch)

    OBJECTIVES.register("own_forward_test")(OwnForward)
    cfg = {
        "frontend": {"name": "fbank"},
        "encoder": {"name": "transformer", "dim": 32, "num_layers": 1, "num_heads": 2},
        "objective": {"name": "own_forward_test", "text_encoder": TEXT, "grad_cache_chunk": 2},
    }
    try:
        with pytest.raises(ConfigError, match="overrides forward but not loss_from_projections"):
            build_model(cfg, Tok())
    finally:
        OBJECTIVES._table.pop("own_forward_test", None)
