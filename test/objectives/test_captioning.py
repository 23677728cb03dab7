"""Captioning objective: loss vs. a reference, PAD ignored, overfit + exact greedy generation,
parallel (CapPa) training, config errors, end-to-end through build_model."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from objective_checks import adam_on_one_batch

from toolkit.config import ConfigError
from toolkit.objectives.captioning import Captioning
from toolkit.registry import OBJECTIVES
from toolkit.text.tokenizer import SentencePieceTokenizer, train_sentencepiece

CAPTIONS = [
    "a low steady tone",
    "a high beeping tone",
    "beeping, low pitch",
    "steady, middle pitch",
]
D = 16


@pytest.fixture(scope="module")
def tok(tmp_path_factory) -> SentencePieceTokenizer:
    more = ["a middle beeping tone", "steady, high pitch", "a low beeping tone"]
    path = train_sentencepiece(CAPTIONS * 3 + more, tmp_path_factory.mktemp("spm") / "spm", 40)
    return SentencePieceTokenizer(str(path))


def decoder_cfg(**kw) -> dict:
    cfg = {"name": "transformer", "dim": 32, "num_layers": 2, "num_heads": 2, "ff_dim": 64}
    cfg.update(dropout=0.0, max_len=24)
    cfg.update(kw)
    return cfg


def objective(vocab: int, **kw) -> Captioning:
    torch.manual_seed(0)
    kw.setdefault("decoder", decoder_cfg())
    return OBJECTIVES.build(
        {"name": "captioning", **kw}, "objective", encoder_dim=D, vocab_size=vocab
    )


def batch_for(tok, captions=CAPTIONS, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids, lens = tok.encode_batch(captions)
    enc_lens = torch.tensor([6, 3, 5, 4][: len(captions)])
    return (
        torch.randn(len(captions), 6, D, generator=g),
        enc_lens,
        {
            "text_tokens": ids,
            "text_lens": lens,
            "captions": list(captions),
        },
    )


def test_loss_matches_reference_and_ignores_pad(tok):
    obj = objective(tok.vocab_size, label_smoothing=0.1).eval()
    enc, lens, batch = batch_for(tok)
    out = obj(enc, lens, batch)
    assert set(out) == {"loss", "token_acc", "ppl"} and out["loss"].ndim == 0
    ids = batch["text_tokens"]
    logits = obj.decoder(ids[:, :-1], enc, lens)
    assert logits.shape == (4, ids.shape[1] - 1, tok.vocab_size)
    tgt = ids[:, 1:]
    ref = F.cross_entropy(logits.transpose(1, 2), tgt, ignore_index=0, label_smoothing=0.1)
    assert torch.allclose(out["loss"], ref, atol=1e-5)
    nll = F.cross_entropy(logits.transpose(1, 2), tgt, ignore_index=0)
    assert torch.allclose(out["ppl"], nll.exp(), atol=1e-4)
    valid = tgt != 0
    acc = (logits.argmax(-1) == tgt)[valid].float().mean()
    assert torch.allclose(out["token_acc"], acc)
    # extra PAD columns change nothing
    padded = dict(batch, text_tokens=torch.cat([ids, torch.zeros(4, 5, dtype=torch.long)], 1))
    out2 = obj(enc, lens, padded)
    for k in out:
        assert torch.allclose(out[k], out2[k], atol=1e-6), k
    # nor does anything in the padded encoder frames
    enc2 = enc.clone()
    enc2[1, 3:] = 1e3
    assert torch.allclose(obj(enc2, lens, batch)["loss"], out["loss"], atol=1e-6)


def test_overfits_four_captions_and_generates_them(tok):
    obj = objective(tok.vocab_size, label_smoothing=0.0)
    enc, lens, batch = batch_for(tok)
    first, _ = adam_on_one_batch(obj, enc, lens, batch, steps=150, lr=3e-3)
    obj.eval()
    with torch.no_grad():
        final = obj(enc, lens, batch)
    assert float(final["loss"]) < 0.05 * first and float(final["token_acc"]) == 1.0
    assert obj.generate(enc, lens, tok, method="greedy") == CAPTIONS
    assert obj.generate(enc, lens, tok, method="beam", beam_size=3) == CAPTIONS
    ids = obj.generate(enc, lens, method="greedy")
    assert ids == [tok.encode(c)[1:-1] for c in CAPTIONS]


@pytest.mark.parametrize("fraction", [0.5, 1.0])
def test_parallel_fraction_trains(tok, fraction):
    obj = objective(tok.vocab_size, parallel_fraction=fraction).train()
    enc, lens, batch = batch_for(tok)
    enc.requires_grad_(True)
    out = obj(enc, lens, batch)
    assert torch.isfinite(out["loss"]) and torch.isfinite(out["ppl"])
    out["loss"].backward()
    emb = obj.decoder.mask_embedding
    assert emb.requires_grad and emb.grad is not None and emb.grad.abs().sum() > 0
    assert all(p.grad is not None for p in obj.parameters())  # every parameter used (DDP)
    assert enc.grad is not None and torch.isfinite(enc.grad).all()


def test_parallel_loss_is_the_all_mask_prediction(tok):
    obj = objective(tok.vocab_size, parallel_fraction=1.0, label_smoothing=0.0).train()
    obj.decoder.eval()  # no dropout anyway; keeps the reference exact
    enc, lens, batch = batch_for(tok)
    ids, tl = batch["text_tokens"], batch["text_lens"]
    torch.manual_seed(1)
    got = obj(enc, lens, batch)["loss"]
    inp = ids[:, :-1]
    logits = obj.decoder(inp, enc, lens, False, tl - 1, torch.ones_like(inp, dtype=torch.bool))
    ref = F.cross_entropy(logits.transpose(1, 2), ids[:, 1:], ignore_index=0)
    assert torch.allclose(got, ref, atol=1e-5)
    # evaluation mode always scores autoregressively
    obj.eval()
    ar = objective(tok.vocab_size, label_smoothing=0.0).eval()
    ar.load_state_dict(obj.state_dict())
    assert torch.allclose(obj(enc, lens, batch)["loss"], ar(enc, lens, batch)["loss"])


def test_no_parallel_freezes_the_mask_embedding(tok):
    obj = objective(tok.vocab_size)
    assert not obj.decoder.mask_embedding.requires_grad
    enc, lens, batch = batch_for(tok)
    obj.train()(enc, lens, batch)["loss"].backward()
    assert all(p.grad is not None for p in obj.parameters() if p.requires_grad)


def test_config_errors(tok):
    v = tok.vocab_size
    with pytest.raises(
        ConfigError, match=r"objective\.decoder\.name: unknown decoder 'gru'; known: transformer"
    ):
        objective(v, decoder={"name": "gru"})
    with pytest.raises(
        ConfigError,
        match=r"objective\.decoder\.width: unknown key for decoder 'transformer'; known keys: .*dim",
    ):
        objective(v, decoder={"name": "transformer", "width": 3})
    with pytest.raises(ConfigError, match=r"objective\.parallel_fraction: must be in \[0, 1\]"):
        objective(v, parallel_fraction=1.5)
    with pytest.raises(ConfigError, match=r"objective\.label_smoothing"):
        objective(v, label_smoothing=1.0)
    with pytest.raises(ConfigError, match="needs a tokenizer"):
        objective(None)
    with pytest.raises(ConfigError, match=r"objective\.parallel_fraction: expected float"):
        objective(v, parallel_fraction="half")
    # the default decoder block builds
    assert objective(v, decoder=None).decoder.dim == 256


def test_end_to_end_model(tok):
    from toolkit.model import build_model

    cfg = {
        "frontend": {"name": "fbank", "num_mel_bins": 20},
        "encoder": {"name": "transformer", "dim": D, "num_layers": 1, "num_heads": 2},
        "objective": {"name": "captioning", "decoder": decoder_cfg()},
    }
    cfg["encoder"].update(ff_dim=32, subsampling_channels=4, dropout=0.0)
    torch.manual_seed(0)
    model = build_model(cfg, tok)
    ids, lens = tok.encode_batch(CAPTIONS[:2])
    batch = {
        "audio": torch.randn(2, 8000) * 0.1,
        "audio_lens": torch.tensor([8000, 5000]),
        "text_tokens": ids,
        "text_lens": lens,
    }
    out = model(batch)
    out["loss"].backward()
    assert torch.isfinite(out["loss"])
    assert model.encoder.layers[0].ff[0].weight.grad is not None
    model.eval()
    with torch.no_grad():
        hidden, hlens = model.encode(batch["audio"], batch["audio_lens"])
        texts = model.objective.generate(hidden, hlens, tok, method="beam", max_len=6)
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)


def test_special_ids_come_from_the_tokenizer():
    """A tokenizer with other special ids (RoBERTa-like: pad 1, bos 0, eos 2): PAD targets are
    ignored under the given id and generation starts from the given BOS."""
    torch.manual_seed(0)
    special = {"pad": 1, "bos": 0, "eos": 2}
    obj = OBJECTIVES.build(
        {"name": "captioning", "decoder": decoder_cfg(), "label_smoothing": 0.0},
        "objective",
        encoder_dim=D,
        vocab_size=12,
        special_ids=special,
    ).eval()
    assert (obj.pad_id, obj.bos_id, obj.eos_id) == (1, 0, 2)
    enc, lens = torch.randn(2, 5, D), torch.tensor([5, 3])
    tokens = torch.tensor([[0, 5, 6, 2, 1, 1], [0, 7, 2, 1, 1, 1]])
    batch = {"text_tokens": tokens, "text_lens": torch.tensor([4, 3])}
    logits = obj.decoder(tokens[:, :-1], enc, lens)
    ref = F.cross_entropy(logits.flatten(0, 1), tokens[:, 1:].flatten(), ignore_index=1)
    assert torch.allclose(obj(enc, lens, batch)["loss"], ref, atol=1e-6)
    seqs = obj.generate(enc, lens, method="greedy", max_len=4)
    assert all(0 not in s and 1 not in s for s in seqs)  # BOS/PAD never generated
