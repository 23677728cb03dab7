"""Language-model plugins: the recipe-trained ``tiny`` LM (tokenizers, padding invariance,
cache-consistent incremental decoding, pretraining, the cache file) and the Hugging Face ``hf``
LM on a tiny random GPT-2 saved to a temp folder (skipped without ``transformers``)."""

from __future__ import annotations

import json
import sys

import pytest
import torch

from toolkit.config import ConfigError
from toolkit.evaluate.heads.lm.base import greedy_generate, left_pad
from toolkit.evaluate.heads.lm.tiny import CharTokenizer, RunTokenizer, WordTokenizer
from toolkit.registry import LANGUAGE_MODELS

TEXTS = ["a dog barks twice.", "rain falls on a roof", "What sound is heard? dog bark"] * 4
TINY = {"name": "tiny", "vocab": "word", "dim": 16, "num_layers": 2, "num_heads": 2}
TINY.update(ff_dim=32, steps=60, batch_size=8, lr=1e-2, dropout=0.0, device="cpu")


@pytest.fixture(scope="module")
def tiny(one_thread):
    return LANGUAGE_MODELS.build(TINY, "lm", texts=TEXTS)


def test_registered():
    assert {"tiny", "hf"} <= set(LANGUAGE_MODELS.names())


def test_tokenizers_round_trip():
    w = WordTokenizer.from_texts(TEXTS)
    ids = w.encode("A dog barks, rain!")
    assert w.unk_id in ids and min(ids) >= 3  # "!" unseen → unk; no BOS/EOS
    assert w.decode(w.encode("a dog barks twice.")) == "a dog barks twice."
    c = CharTokenizer.from_texts(TEXTS)
    assert c.decode(c.encode("a dog")) == "a dog" and c.encode("Z") == [c.unk_id]

    class Spm:  # the run tokenizer's interface: encode adds BOS/EOS
        vocab_size, pad_id, bos_id, eos_id = 10, 0, 2, 3

        def encode(self, text):
            return [2, *[4 + len(w) for w in text.split()], 3]

        def decode(self, ids):
            return " ".join("x" * (i - 4) for i in ids)

    r = RunTokenizer(Spm())
    assert r.encode("ab cde") == [6, 7] and r.decode([6, 7]) == "xx xxx"
    assert (r.bos_id, r.eos_id, r.vocab_size) == (2, 3, 10)


def test_pretraining_learns_and_freezes(tiny):
    losses = tiny.pretrain_losses
    assert len(losses) == TINY["steps"] and losses[-1] < 0.5 * losses[0], losses
    assert tiny.frozen() and not tiny.model.training
    assert tiny.hidden_size == 16 and tiny.vocab_size == tiny.tokenizer.vocab_size


def test_left_padding_and_incremental_steps_match_full_forward(tiny):
    seqs = [[tiny.bos_id, *tiny.tokenizer.encode(t)] for t in ("a dog barks twice.", "rain")]
    ids, mask = left_pad(seqs, tiny.pad_id)
    with torch.no_grad():
        logits = tiny(tiny.embed(ids), mask)
        assert logits.shape == (2, ids.shape[1], tiny.vocab_size)
        for i, s in enumerate(seqs):  # each alone, unpadded
            alone = tiny(tiny.embed(torch.tensor([s])), torch.ones(1, len(s), dtype=torch.bool))
            assert torch.allclose(logits[i, -len(s) :], alone[0], atol=1e-5)
        # prefix then one token at a time through the cache == one full pass
        split = 2
        out, cache = tiny.step(tiny.embed(ids[:, :split]), mask[:, :split], None)
        parts = [out]
        for t in range(split, ids.shape[1]):
            out, cache = tiny.step(tiny.embed(ids[:, t : t + 1]), mask[:, : t + 1], cache)
            parts.append(out)
        stepped = torch.cat(parts, 1)
        assert torch.allclose(stepped[mask], logits[mask], atol=1e-5)


def test_greedy_generate_continues_learned_text(tiny):
    prompt = [tiny.bos_id, *tiny.tokenizer.encode("What sound is heard?")]
    ids, mask = left_pad([prompt, [tiny.bos_id, *tiny.tokenizer.encode("a dog")]], tiny.pad_id)
    out = greedy_generate(tiny, tiny.embed(ids), mask, 8, banned=[tiny.pad_id, tiny.bos_id])
    assert tiny.tokenizer.decode(out[0]) == "dog bark"
    assert tiny.tokenizer.decode(out[1]) == "barks twice."
    assert all(tiny.eos_id not in row and len(row) <= 8 for row in out)
    with pytest.raises(ValueError, match="max_new_tokens"):
        greedy_generate(tiny, tiny.embed(ids), mask, 0)


def test_cache_file_is_reused_and_refreshed(tmp_path, caplog):
    path = str(tmp_path / "lm.pt")
    cfg = {**TINY, "steps": 5, "cache": path}
    first = LANGUAGE_MODELS.build(cfg, "lm", texts=TEXTS)
    with caplog.at_level("INFO", logger="toolkit.evaluate.heads.lm.tiny"):
        again = LANGUAGE_MODELS.build(cfg, "lm", texts=TEXTS)
        assert "loaded from" in caplog.text and not hasattr(again, "pretrain_losses")
        for a, b in zip(first.state_dict().values(), again.state_dict().values()):
            assert torch.equal(a, b)
        caplog.clear()
        other = LANGUAGE_MODELS.build(cfg, "lm", texts=TEXTS + ["a new sentence"])
        assert "retraining" in caplog.text and hasattr(other, "pretrain_losses")
    # without text the cached model (and its word table) is loaded
    loaded = LANGUAGE_MODELS.build(cfg, "lm")
    assert loaded.tokenizer.words == other.tokenizer.words
    with pytest.raises(ConfigError, match="no training text and no cache"):
        LANGUAGE_MODELS.build({**TINY, "cache": str(tmp_path / "none.pt")}, "lm")
    with pytest.raises(ConfigError, match="lm.vocab: expected one of "):
        LANGUAGE_MODELS.build({**TINY, "vocab": "bpe"}, "lm", texts=TEXTS)


# ----------------------------------------------------------------------------- hf
def _byte_chars() -> list[str]:
    """GPT-2's byte → printable-character table (every byte a one-character token)."""
    keep = [*range(33, 127), *range(161, 173), *range(174, 256)]
    extra = [b for b in range(256) if b not in keep]
    return [chr(b) for b in keep] + [chr(256 + i) for i in range(len(extra))]


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory) -> str:
    """A tiny random GPT-2 (2 layers, 16 dims) with a byte-level tokenizer, saved locally."""
    transformers = pytest.importorskip(
        "transformers", reason="transformers not installed (pip install .[hf])"
    )
    d = tmp_path_factory.mktemp("tiny_gpt2")
    vocab = {c: i for i, c in enumerate(_byte_chars())}
    vocab["<|endoftext|>"] = eos = len(vocab)
    (d / "vocab.json").write_text(json.dumps(vocab))
    (d / "merges.txt").write_text("#version: 0.2\n")
    transformers.GPT2Tokenizer(str(d / "vocab.json"), str(d / "merges.txt")).save_pretrained(d)
    cfg = transformers.GPT2Config(
        vocab_size=len(vocab),
        n_embd=16,
        n_layer=2,
        n_head=2,
        n_positions=64,
        bos_token_id=eos,
        eos_token_id=eos,
    )
    torch.manual_seed(0)
    transformers.GPT2LMHeadModel(cfg).save_pretrained(str(d))
    return str(d)


def test_hf_loads_locally_and_runs(gpt2_dir):
    lm = LANGUAGE_MODELS.build({"name": "hf", "path": gpt2_dir}, "lm", texts=TEXTS)
    assert lm.hidden_size == 16 and lm.vocab_size == 257 and lm.eos_id == 256
    assert lm.pad_id == 256 and lm.bos_id == 256 and lm.frozen() and not lm.model.training
    lm.train()
    assert not lm.model.training  # frozen stays in eval mode
    ids = lm.tokenizer.encode("a dog")
    table = {c: i for i, c in enumerate(_byte_chars())}
    assert ids == [table[c] for c in "aĠdog"]  # byte-level: a space is "Ġ"; no special tokens
    assert lm.tokenizer.decode(ids) == "a dog"
    seqs = [lm.tokenizer.encode("rain falls"), lm.tokenizer.encode("dog")]
    pid, mask = left_pad(seqs, lm.pad_id)
    with torch.no_grad():
        logits = lm(lm.embed(pid), mask)
        assert logits.shape == (2, pid.shape[1], 257)
        alone = lm(lm.embed(torch.tensor([seqs[1]])), torch.ones(1, len(seqs[1]), dtype=torch.bool))
        assert torch.allclose(logits[1, -len(seqs[1]) :], alone[0], atol=1e-4)  # left padding
        out, cache = lm.step(lm.embed(pid[:, :-1]), mask[:, :-1], None)
        last, _ = lm.step(lm.embed(pid[:, -1:]), mask, cache)
        assert torch.allclose(last[:, 0], logits[:, -1], atol=1e-4)  # cache == full pass
        gen = greedy_generate(lm, lm.embed(pid), mask, 3)
        assert len(gen) == 2 and all(len(g) <= 3 for g in gen)
    # gradients reach the input embeddings through the frozen LM (what trains the adapter)
    emb = lm.embed(pid).detach().requires_grad_(True)
    lm(emb, mask).sum().backward()
    assert emb.grad is not None and all(p.grad is None for p in lm.parameters())


def test_hf_errors(tmp_path, monkeypatch):
    pytest.importorskip("transformers", reason="transformers not installed")
    with pytest.raises(ConfigError, match="not a local directory"):
        LANGUAGE_MODELS.build({"name": "hf", "path": str(tmp_path / "nope")}, "lm")
    with pytest.raises(ConfigError, match="has no config.json"):
        LANGUAGE_MODELS.build({"name": "hf", "path": str(tmp_path)}, "lm")
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(ConfigError, match=r"language_model 'hf' needs the optional package"):
        LANGUAGE_MODELS.build({"name": "hf", "path": str(tmp_path)}, "lm")
