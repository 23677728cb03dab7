"""SentencePiece tokenizer: trained on training captions (recipe stage 3), loaded from a path."""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from torch import Tensor

from toolkit.config import ConfigError
from toolkit.registry import TOKENIZERS

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3


def train_sentencepiece(
    captions: Iterable[str],
    model_prefix: str | Path,
    vocab_size: int = 1000,
    model_type: str = "unigram",
    character_coverage: float = 1.0,
) -> Path:
    """Train a SentencePiece model on ``captions``; writes ``<model_prefix>.model`` (atomically).

    Ids: pad=0, unk=1, bos=2, eos=3. If the text is too small for ``vocab_size``, the largest
    feasible size is used (SentencePiece's ``hard_vocab_limit=false``).
    """
    import sentencepiece as spm

    model_prefix = Path(model_prefix)
    model_prefix.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    text = [c.strip() for c in captions if c and c.strip()]
    if not text:
        raise ValueError("no captions to train the tokenizer on")
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(text),
        model_writer=buf,
        vocab_size=vocab_size,
        model_type=model_type,
        character_coverage=character_coverage,
        pad_id=PAD_ID,
        unk_id=UNK_ID,
        bos_id=BOS_ID,
        eos_id=EOS_ID,
        hard_vocab_limit=False,
        num_threads=2,
        minloglevel=2,
    )
    out = model_prefix.with_suffix(".model")
    tmp = out.with_suffix(".model.tmp")
    tmp.write_bytes(buf.getvalue())
    tmp.replace(out)
    return out


def pad_ids(seqs: Sequence[Sequence[int]], pad_id: int = PAD_ID) -> tuple[Tensor, Tensor]:
    """Token-id lists → right-padded ``(B, max len)`` long ids (``pad_id`` filled) and ``(B,)``
    lengths (``(0, 0)`` ids for no sequences)."""
    lens = torch.tensor([len(s) for s in seqs], dtype=torch.long)
    out = torch.full((len(seqs), int(lens.max()) if len(seqs) else 0), pad_id, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = torch.tensor(list(s), dtype=torch.long)
    return out, lens


@TOKENIZERS.register("sentencepiece")
class SentencePieceTokenizer:
    """Captions ↔ token ids. ``encode_batch`` gives padded ``(B, L)`` ids with BOS/EOS."""

    def __init__(self, model: str, max_len: int = 64) -> None:
        import sentencepiece as spm

        if not Path(model).is_file():
            raise ConfigError(
                f"tokenizer.model: {model} does not exist (run the tokenizer stage first)"
            )
        self.sp = spm.SentencePieceProcessor(model_file=str(model))
        self.max_len = max_len
        self.vocab_size = self.sp.get_piece_size()
        self.pad_id, self.bos_id, self.eos_id = PAD_ID, BOS_ID, EOS_ID

    def encode(self, text: str) -> list[int]:
        """One caption → ids ``[BOS, ..., EOS]`` truncated to ``max_len``."""
        ids = self.sp.encode(text)[: self.max_len - 2]
        return [BOS_ID, *ids, EOS_ID]

    def encode_batch(self, texts: Sequence[str]) -> tuple[Tensor, Tensor]:
        """Captions → ``(B, L)`` long ids (PAD=0) and ``(B,)`` lengths."""
        return pad_ids([self.encode(t) for t in texts], PAD_ID)

    def decode(self, ids: Sequence[int]) -> str:
        """Ids (special ids dropped) → text."""
        return self.sp.decode([i for i in ids if i > EOS_ID])
