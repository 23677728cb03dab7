"""The ``retrieval_probe`` evaluator: a text tower + projections trained on frozen frames."""

from __future__ import annotations

import pytest
import torch

from toolkit.config import ConfigError
from toolkit.evaluate.embeddings import EmbeddingSet
from toolkit.evaluate.heads.fit import FitSchedule
from toolkit.evaluate.heads.probe import Standardizer
from toolkit.evaluate.retrieval import LOWER_IS_BETTER_METRICS
from toolkit.evaluate.text_alignment import (
    ATTENTION_GROUP,
    GROUP,
    AlignmentHead,
    AudioInputs,
    RetrievalProbe,
    train_alignment_head,
)
from toolkit.layers import AttentionPool, masked_mean
from toolkit.registry import EVALUATORS
from toolkit.text.tokenizer import SentencePieceTokenizer, train_sentencepiece

D = 8
CLASSES = ["dog", "rain", "siren", "piano", "engine", "bird", "bell", "wind"]
PARAPHRASES = ["a {} sound", "the sound of a {}", "someone hears a {} nearby"]
TINY_TEXT = {"name": "transformer", "dim": 32, "num_layers": 1, "num_heads": 2, "ff_dim": 64}
TINY_TEXT.update(dropout=0.0, max_len=16)
PATTERNS = torch.randn(len(CLASSES), D, generator=torch.Generator().manual_seed(0)) * 2


@pytest.fixture(scope="module")
def tok(tmp_path_factory) -> SentencePieceTokenizer:
    text = [p.format(c) for c in CLASSES for p in PARAPHRASES] * 3
    path = train_sentencepiece(text, tmp_path_factory.mktemp("spm") / "spm", 80)
    return SentencePieceTokenizer(str(path), max_len=16)


def toy_split(per_class: int, num_caps: int, seed: int, shuffle: bool = False) -> EmbeddingSet:
    """Clips of class k: 3–7 frames of ``PATTERNS[k]`` + noise; captions name the class
    (``num_caps`` paraphrases). ``shuffle``: the caption lists are permuted across clips."""
    g = torch.Generator().manual_seed(seed)
    frames, caps, ids = [], [], []
    for k, name in enumerate(CLASSES):
        for j in range(per_class):
            t = int(torch.randint(3, 8, (1,), generator=g))
            frames.append((PATTERNS[k] + 0.5 * torch.randn(t, D, generator=g)).half())
            first = int(torch.randint(len(PARAPHRASES), (1,), generator=g))
            order = [(first + i) % len(PARAPHRASES) for i in range(num_caps)]
            caps.append([PARAPHRASES[i].format(name) for i in order])
            ids.append(f"s{seed}-{k}-{j}")
    if shuffle:
        perm = torch.randperm(len(caps), generator=g).tolist()
        caps = [caps[i] for i in perm]
    pooled = torch.stack([f.float().mean(0) for f in frames])
    return EmbeddingSet(ids, pooled, None, {}, caps, extra={"frames": frames})


def splits_for(shuffle: bool = False) -> dict[str, EmbeddingSet]:
    # one test clip per class, all three captions: every caption is a query
    return {
        "train": toy_split(8, 2, 1, shuffle),
        "dev": toy_split(1, 3, 2),
        "test": toy_split(1, 3, 3),
    }


def probe(tok, **kw) -> RetrievalProbe:
    kw = {
        "text_encoder": TINY_TEXT,
        "embed_dim": 16,
        "steps": 150,
        "batch_size": 16,
        "lr": 3e-3,
        "warmup_steps": 10,
        "device": "cpu",
        **kw,
    }
    return EVALUATORS.build({"name": "retrieval_probe", **kw}, "eval.evaluators[0]", tokenizer=tok)


def value(rows: list[dict], task: str, metric: str) -> float:
    (r,) = [r for r in rows if r["task"] == task and r["metric"] == metric]
    return r["value"]


def test_learns_toy_alignment_and_shuffled_captions_stay_near_chance(tok):
    ev = probe(tok)
    rows = ev("pretrained", splits_for(), None)
    assert {r["group"] for r in rows} == {GROUP}
    metrics = ["R@1", "R@5", "R@10", "mAP@10", "medR", "meanR"]
    assert [(r["task"], r["metric"]) for r in rows] == [
        (t, m) for t in ("audio→text", "text→audio") for m in metrics
    ]
    chance = {r["task"]: r["chance"] for r in rows if r["metric"] == "R@1"}
    assert chance["text→audio"] == pytest.approx(100 / 8)  # 8 test clips
    assert chance["audio→text"] == pytest.approx(100 * 3 / 24)  # 3 of 24 captions
    assert all(r["chance"] is None for r in rows if r["metric"] != "R@1")
    assert value(rows, "text→audio", "R@1") >= 85.0
    assert value(rows, "audio→text", "R@1") >= 85.0
    assert value(rows, "text→audio", "medR") == 1.0
    assert value(rows, "audio→text", "meanR") < 1.5
    shuffled = ev("shuffled", splits_for(shuffle=True), None)
    assert value(shuffled, "text→audio", "R@1") <= 40.0
    assert value(shuffled, "audio→text", "R@1") <= 40.0
    assert value(shuffled, "text→audio", "medR") > 1.0
    assert {"medR", "meanR"} == LOWER_IS_BETTER_METRICS


def test_deterministic_and_leaves_caller_rng_alone(tok):
    ev = probe(tok, steps=20)
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    a = ev("m", splits_for(), None)
    after = torch.rand(3)
    b = ev("m", splits_for(), None)
    assert [r["value"] for r in a] == [r["value"] for r in b]
    torch.testing.assert_close(before, after)
    c = probe(tok, steps=20, seed=1)("m", splits_for(), None)
    assert [r["value"] for r in c] != [r["value"] for r in a]


def test_attention_pooling_learns_and_pooled_fallback(tok):
    rows = probe(tok, audio_pooling="attention", attention_heads=2)("m", splits_for(), None)
    assert value(rows, "text→audio", "R@1") >= 75.0
    assert {r["group"] for r in rows} == {ATTENTION_GROUP}
    # a model without frames (the log-mel baseline) uses its pooled vectors as single frames
    splits = splits_for()
    for es in splits.values():
        es.extra = {}
    rows = probe(tok)("logmel_stats", splits, None)
    assert value(rows, "text→audio", "R@1") >= 75.0
    assert probe(tok, pooled_fallback=False)("logmel_stats", splits, None) == []


def test_test_clips_without_captions_are_left_out(tok):
    splits = splits_for()
    splits["test"].captions[0] = []  # class "dog" has no caption: not a target, not a query
    rows = probe(tok, steps=5)("m", splits, None)
    chance = {r["task"]: r["chance"] for r in rows if r["metric"] == "R@1"}
    assert chance["text→audio"] == pytest.approx(100 / 7)


def test_attention_pool_padding_invariance_and_mean_start():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 6, 5, generator=g)
    lens = torch.tensor([6, 2, 4])
    pool = AttentionPool(5, heads=2)
    torch.testing.assert_close(pool(x, lens), masked_mean(x, lens))  # zero queries = mean
    with torch.no_grad():
        pool.query.normal_(generator=g)
    garbage = x.clone()
    garbage[1, 2:] = 1e4
    garbage[2, 4:] = float("nan")
    torch.testing.assert_close(pool(garbage, lens), pool(x, lens))
    torch.testing.assert_close(masked_mean(garbage, lens), masked_mean(x, lens))
    one = pool(x[1:2, :2], lens[1:2])
    torch.testing.assert_close(one, pool(x, lens)[1:2])


def test_mean_inputs_equal_padded_frames_and_training_moves_everything(tok):
    es = toy_split(2, 2, 5)
    norm = Standardizer.fit(es.extra["frames"])
    fast = AudioInputs(es.extra["frames"], norm, pooled=True)
    slow = AudioInputs(es.extra["frames"], norm, pooled=False)
    idx = [0, 3, 5]
    dev = torch.device("cpu")
    torch.testing.assert_close(
        masked_mean(*fast.batch(idx, dev)), masked_mean(*slow.batch(idx, dev))
    )
    torch.manual_seed(0)
    head = AlignmentHead(D, tok.vocab_size, TINY_TEXT, embed_dim=16)
    start = {n: p.detach().clone() for n, p in head.named_parameters()}
    caps = [[tok.encode(c) for c in cs] for cs in es.captions]
    losses = train_alignment_head(head, fast, caps, FitSchedule(30, 8, 3e-3, warmup_steps=2))
    assert len(losses) == 30 and losses[-1] < losses[0]
    moved = {n for n, p in head.named_parameters() if not torch.equal(p, start[n])}
    assert {"logit_scale", "audio_proj.0.weight", "text_proj.0.weight"} <= moved
    assert any(n.startswith("text_encoder.") for n in moved)


def test_config_errors(tok):
    with pytest.raises(ConfigError, match="tokenizer"):
        EVALUATORS.build({"name": "retrieval_probe"}, "e")
    with pytest.raises(ConfigError, match=r"e\.tokenizer: unknown key"):
        EVALUATORS.check({"name": "retrieval_probe", "tokenizer": "x"}, "e", ("tokenizer",))
    with pytest.raises(ConfigError, match="text_encoder"):
        probe(tok, text_encoder={"name": "transformer", "layers": 2})
    with pytest.raises(ConfigError, match="audio_pooling"):
        probe(tok, audio_pooling="max")
    with pytest.raises(ConfigError, match="batch_size"):
        probe(tok, batch_size=1)
    assert RetrievalProbe.needs == frozenset({"frames"})
