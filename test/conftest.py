"""Shared fixtures: the tiny tone corpus and a tokenizer trained on it (built once per session)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP (see toolkit/bin)
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))

from fixtures import make_tone_corpus, train_tiny_run  # noqa: E402


@pytest.fixture(scope="session")
def tone_data(tmp_path_factory) -> dict[str, Path]:
    """train/dev/test manifests of tone clips and a SentencePiece model trained on them."""
    from toolkit.data.cuts import cut_captions
    from toolkit.text.tokenizer import train_sentencepiece

    root = tmp_path_factory.mktemp("tones")
    out = {}
    for split, n, seed in (("train", 36, 0), ("dev", 12, 1), ("test", 12, 2)):
        cuts = make_tone_corpus(root / "audio", n, seed=seed, prefix=split)
        out[split] = root / f"cuts_{split}.jsonl.gz"
        cuts.to_file(out[split])
        if split == "train":
            caps = [c for cut in cuts for c in cut_captions(cut)]
            out["spm"] = train_sentencepiece(caps, root / "spm", vocab_size=40)
    out["root"] = root
    return out


@pytest.fixture(scope="session")
def tiny_run(tone_data, tmp_path_factory) -> Path:
    """A 4-step tiny contrastive run on the tone corpus, shared read-only by the inference,
    HEAR and weights-only tests (copy it before changing anything in it)."""
    return train_tiny_run(tone_data, tmp_path_factory.mktemp("tiny_run") / "exp")
