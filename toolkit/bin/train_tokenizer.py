"""Stage 3: train the SentencePiece tokenizer on the training captions.

``python -m toolkit.bin.train_tokenizer --cuts data/cuts_train.jsonl.gz --vocab-size 1000 --out data/spm``
writes ``data/spm.model``.
"""

from __future__ import annotations

import argparse
import logging

from lhotse import CutSet

from toolkit.bin.common import run_cli
from toolkit.data.cuts import cut_captions
from toolkit.text.tokenizer import train_sentencepiece
from toolkit.utils.logging import setup_logging

log = logging.getLogger("toolkit.tokenizer")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cuts", required=True, help="training cuts (captions are read from them)")
    p.add_argument("--out", required=True, help="model prefix (writes <out>.model)")
    p.add_argument("--vocab-size", type=int, default=1000)
    p.add_argument("--model-type", default="unigram", choices=["unigram", "bpe", "char", "word"])
    args = p.parse_args(argv)
    setup_logging()
    captions = (c for cut in CutSet.from_file(args.cuts) for c in cut_captions(cut))
    path = train_sentencepiece(captions, args.out, args.vocab_size, args.model_type)
    import sentencepiece as spm

    size = spm.SentencePieceProcessor(model_file=str(path)).get_piece_size()
    log.info("tokenizer %s: %d pieces (requested %d)", path, size, args.vocab_size)
    return 0


def cli() -> None:
    run_cli(main)


if __name__ == "__main__":
    cli()
