"""Hugging Face text tower + tokenizer (``hf``) on a tiny random BERT saved to a temp folder:
ids, padding, pooling vs. the model run alone, freezing, gradients, errors, build from config.
The model tests skip when ``transformers`` is not installed; the optional-import tests never do."""

from __future__ import annotations

import pickle
import subprocess
import sys

import pytest
import torch

from toolkit.config import ConfigError
from toolkit.registry import TEXT_ENCODERS, TOKENIZERS

try:
    import transformers  # noqa: F401

    HAS_HF = True
except ImportError:
    HAS_HF = False
needs_hf = pytest.mark.skipif(not HAS_HF, reason="transformers not installed (pip install .[hf])")

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ","]
WORDS += "a the dog cat bird barks meows sings music plays loud soft quiet rain falls".split()
WORDS += ["##s", "##ly", "##ing"]
CAPTIONS = ["a dog barks loudly.", "rain falls", "the bird sings softly, a cat meows", "music"]
HIDDEN = 16


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory) -> str:
    """A tiny randomly initialised BERT (2 layers, 16 dims) + WordPiece vocab, saved locally."""
    transformers = pytest.importorskip(
        "transformers", reason="transformers not installed (pip install .[hf])"
    )
    d = tmp_path_factory.mktemp("tiny_bert")
    (d / "vocab.txt").write_text("\n".join(WORDS) + "\n")
    cfg = transformers.BertConfig(
        vocab_size=len(WORDS),
        hidden_size=HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=40,
    )
    torch.manual_seed(0)
    transformers.BertModel(cfg).save_pretrained(str(d))
    return str(d)


def test_importing_toolkit_does_not_import_transformers():
    code = (
        "import sys\n"
        "sys.modules['transformers'] = None  # as if not installed\n"
        "from toolkit.registry import TEXT_ENCODERS, TOKENIZERS\n"
        "assert 'hf' in TEXT_ENCODERS.names() and 'hf' in TOKENIZERS.names()\n"
        "import toolkit.model, toolkit.bin.train\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_without_transformers_the_error_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "transformers", None)  # import → ImportError
    with pytest.raises(ConfigError, match=r"pip install 'transformers>=4\.40'"):
        TOKENIZERS.build({"name": "hf", "path": str(tmp_path)}, key="tokenizer")
    with pytest.raises(ConfigError, match="text_encoder 'hf' needs the optional package"):
        TEXT_ENCODERS.build({"name": "hf", "path": str(tmp_path)}, vocab_size=10)


@needs_hf
def test_missing_folder_is_a_config_error(tmp_path):
    missing = str(tmp_path / "no_such_bert")
    with pytest.raises(ConfigError, match="tokenizer.path: .*not a local directory"):
        TOKENIZERS.build({"name": "hf", "path": missing}, key="tokenizer")
    with pytest.raises(ConfigError, match="text_encoder.path: .*never downloaded"):
        TEXT_ENCODERS.build({"name": "hf", "path": missing}, vocab_size=10)


@needs_hf
def test_tokenizer_ids_padding_decode_pickle(bert_dir):
    tok = TOKENIZERS.build({"name": "hf", "path": bert_dir, "max_len": 6}, key="tokenizer")
    assert tok.vocab_size == len(WORDS)
    assert (tok.pad_id, tok.bos_id, tok.eos_id) == (0, 2, 3)  # [PAD], [CLS], [SEP]
    ids = tok.encode("A dog barks")
    assert ids == [2, WORDS.index("a"), WORDS.index("dog"), WORDS.index("barks"), 3]
    assert tok.decode(ids) == "a dog barks"
    assert len(tok.encode("the bird sings softly, a cat meows")) == 6  # truncated, ends in [SEP]
    assert tok.encode("the bird sings softly, a cat meows")[-1] == 3
    batch, lens = tok.encode_batch(CAPTIONS)
    assert batch.dtype == torch.long and batch.shape == (4, int(lens.max()))
    for row, n, text in zip(batch, lens, CAPTIONS):
        assert row[:n].tolist() == tok.encode(text)
        assert (row[n:] == tok.pad_id).all()
    clone = pickle.loads(pickle.dumps(tok))  # dataloader workers get a pickled copy
    assert torch.equal(clone.encode_batch(CAPTIONS)[0], batch)


@needs_hf
@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_pooling_matches_the_model_run_alone(bert_dir, pooling):
    tok = TOKENIZERS.build({"name": "hf", "path": bert_dir}, key="tokenizer")
    enc = TEXT_ENCODERS.build(
        {"name": "hf", "path": bert_dir, "pooling": pooling}, vocab_size=tok.vocab_size
    ).eval()
    assert enc.output_dim == HIDDEN
    ids, lens = tok.encode_batch(CAPTIONS)
    with torch.no_grad():
        got = enc(ids, lens)
        assert got.shape == (len(CAPTIONS), HIDDEN)
        for i, text in enumerate(CAPTIONS):  # one caption, no padding, straight through HF
            alone = torch.tensor([tok.encode(text)])
            h = enc.model(input_ids=alone).last_hidden_state[0]
            ref = h[0] if pooling == "cls" else h.mean(0)
            assert torch.allclose(got[i], ref, atol=1e-5), (i, pooling)


@needs_hf
def test_trainable_tower_gets_gradients_and_has_no_pooler(bert_dir):
    enc = TEXT_ENCODERS.build({"name": "hf", "path": bert_dir}, vocab_size=len(WORDS))
    assert not any("pooler" in k for k in enc.state_dict())
    tok = TOKENIZERS.build({"name": "hf", "path": bert_dir}, key="tokenizer")
    enc(*tok.encode_batch(CAPTIONS)).pow(2).sum().backward()
    missing = [n for n, p in enc.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing  # every parameter is used: DDP needs no find_unused_parameters


@needs_hf
def test_frozen_tower_stays_in_eval_mode_without_gradients(bert_dir):
    from toolkit.objectives.contrastive import Contrastive

    torch.manual_seed(0)
    obj = Contrastive(
        encoder_dim=8,
        vocab_size=len(WORDS),
        text_encoder={"name": "hf", "path": bert_dir, "freeze": True, "pooling": "mean"},
        embed_dim=8,
    )
    obj.train()
    assert not obj.text_encoder.model.training  # dropout stays off
    assert not any(p.requires_grad for p in obj.text_encoder.parameters())
    tok = TOKENIZERS.build({"name": "hf", "path": bert_dir}, key="tokenizer")
    ids, lens = tok.encode_batch(CAPTIONS)
    first = obj.text_encoder(ids, lens)
    assert torch.equal(first, obj.text_encoder(ids, lens))  # deterministic (no dropout)
    out = obj(
        torch.randn(4, 5, 8), torch.tensor([5, 4, 3, 2]), {"text_tokens": ids, "text_lens": lens}
    )
    out["loss"].backward()
    assert obj.text_proj[0].weight.grad is not None and obj.audio_proj[0].weight.grad is not None
    assert all(p.grad is None for p in obj.text_encoder.parameters())


@needs_hf
def test_vocab_mismatch_errors(bert_dir):
    with pytest.raises(ConfigError, match=f"embeds {len(WORDS)}"):
        TEXT_ENCODERS.build({"name": "hf", "path": bert_dir}, vocab_size=5000)
    with pytest.raises(ConfigError, match="needs the run's tokenizer"):
        TEXT_ENCODERS.build({"name": "hf", "path": bert_dir}, vocab_size=None)


@needs_hf
def test_config_builds_and_overfits(bert_dir):
    """tokenizer + text_encoder ``hf`` from one config, through check_top_level and build_model;
    the contrastive loss drops on a fixed tiny batch."""
    from toolkit.model import build_model, build_tokenizer
    from toolkit.schema import check_top_level

    cfg = {
        "frontend": {"name": "fbank", "num_mel_bins": 40},
        "encoder": {"name": "transformer", "dim": 16, "num_layers": 1, "num_heads": 2},
        "tokenizer": {"name": "hf", "path": bert_dir, "max_len": 16},
        "objective": {
            "name": "contrastive",
            "embed_dim": 8,
            "text_encoder": {"name": "hf", "path": bert_dir, "pooling": "cls"},
        },
    }
    cfg["encoder"].update(ff_dim=32, dropout=0.0, subsampling_channels=8)
    check_top_level(cfg)
    tok = build_tokenizer(cfg)
    torch.manual_seed(0)
    model = build_model(cfg, tok)
    ids, lens = tok.encode_batch(CAPTIONS)
    g = torch.Generator().manual_seed(0)
    batch = {
        "audio": torch.randn(4, 4000, generator=g),
        "audio_lens": torch.tensor([4000, 3500, 3000, 2500]),
        "text_tokens": ids,
        "text_lens": lens,
    }
    model.eval()  # no dropout: a clean overfit
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    losses = []
    for _ in range(40):
        loss = model(batch)["loss"]
        assert torch.isfinite(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0], losses
