import pytest
import torch

from toolkit.evaluate.embeddings import EmbeddingSet
from toolkit.evaluate.retrieval import (
    LOWER_IS_BETTER_METRICS,
    caption_queries,
    median_rank,
    retrieval_metrics,
    retrieval_ranks,
    retrieval_rows,
)
from toolkit.registry import EVALUATORS


def _from_sim(sim_text_audio):
    """Embeddings whose dot products reproduce a given (M, N) text x audio similarity."""
    sim = torch.tensor(sim_text_audio, dtype=torch.float32)
    return torch.eye(sim.shape[1]), sim


def test_perfect_embeddings():
    audio = torch.eye(4)
    t2a = torch.tensor([0, 0, 1, 2, 3, 3, 3])
    out = retrieval_metrics(audio, audio[t2a], t2a)
    for key in (
        "a2t_R@1",
        "a2t_R@5",
        "a2t_R@10",
        "a2t_mAP@10",
        "t2a_R@1",
        "t2a_R@5",
        "t2a_R@10",
        "t2a_mAP@10",
    ):
        assert out[key] == pytest.approx(100.0), key
    assert out["t2a_R@1_chance"] == pytest.approx(25.0)
    assert out["a2t_R@1_chance"] == pytest.approx(100.0 * (2 + 1 + 1 + 3) / 7 / 4)


def test_known_ranking_with_ties():
    # rows = captions, columns = audios; captions 0,1 -> audio 0, 2 -> audio 1, 3 -> audio 2
    audio, text = _from_sim(
        [
            [0.9, 0.5, 0.1],  # t0: audio 0 ranked 1
            [0.2, 0.8, 0.3],  # t1: audio 0 ranked 3
            [0.7, 0.7, 0.1],  # t2: audio 1 tied with audio 0 -> pessimistic rank 2
            [0.4, 0.6, 0.5],  # t3: audio 2 ranked 2
        ]
    )
    t2a = torch.tensor([0, 0, 1, 2])
    out = retrieval_metrics(audio, text, t2a, ks=(1, 2, 5, 10))
    # text -> audio: ranks 1, 3, 2, 2
    assert out["t2a_R@1"] == pytest.approx(25.0)
    assert out["t2a_R@2"] == pytest.approx(75.0)
    assert out["t2a_R@5"] == pytest.approx(100.0)
    assert out["t2a_mAP@10"] == pytest.approx(100 * (1 + 1 / 3 + 1 / 2 + 1 / 2) / 4)
    # audio -> text, scores over captions (columns of the table above):
    # a0: [0.9, 0.2, 0.7, 0.4], relevant t0 (rank 1), t1 (rank 4): AP = (1/1 + 2/4) / 2
    # a1: [0.5, 0.8, 0.7, 0.6], relevant t2 (rank 2):              AP = (1/2) / 1
    # a2: [0.1, 0.3, 0.1, 0.5], relevant t3 (rank 1):              AP = 1
    assert out["a2t_R@1"] == pytest.approx(100 * 2 / 3)
    assert out["a2t_R@2"] == pytest.approx(100.0)
    assert out["a2t_mAP@10"] == pytest.approx(100 * (0.75 + 0.5 + 1.0) / 3)
    assert out["a2t_R@1_chance"] == pytest.approx(100 * (2 / 4 + 1 / 4 + 1 / 4) / 3)
    assert out["t2a_R@1_chance"] == pytest.approx(100 / 3)
    # ranks: t2a 1, 3, 2, 2 -> 0-based median 1 -> medR 2, meanR 8/4;
    # a2t best caption ranks 1 (t0), 2 (t2), 1 (t3) -> medR 1, meanR 4/3
    assert out["t2a_medR"] == 2.0 and out["t2a_meanR"] == pytest.approx(2.0)
    assert out["a2t_medR"] == 1.0 and out["a2t_meanR"] == pytest.approx(4 / 3)
    ranks = retrieval_ranks(audio, text, t2a)
    assert ranks["t2a"].tolist() == [1, 3, 2, 2]
    assert ranks["a2t"].tolist() == [1, 2, 1]


def test_multi_caption_ties_are_pessimistic():
    audio, text = _from_sim(
        [
            [0.5, 0.1],  # t0 -> a0
            [0.5, 0.1],  # t1 -> a0
            [0.2, 0.1],  # t2 -> a0
            [0.5, 0.9],  # t3 -> a1 (irrelevant for a0 but tied with t0, t1)
        ]
    )
    t2a = torch.tensor([0, 0, 0, 1])
    out = retrieval_metrics(audio, text, t2a)
    # a0 order: t3, t0, t1, t2 -> relevant ranks 2, 3, 4: AP = (1/2 + 2/3 + 3/4) / 3
    # a1: t3 ranked first -> AP 1
    ap0 = (1 / 2 + 2 / 3 + 3 / 4) / 3
    assert out["a2t_R@1"] == pytest.approx(50.0)
    assert out["a2t_R@5"] == pytest.approx(100.0)
    assert out["a2t_mAP@10"] == pytest.approx(100 * (ap0 + 1.0) / 2)
    assert out["t2a_R@1"] == pytest.approx(100.0)


def test_constant_embeddings_score_zero():
    audio = torch.ones(5, 3)
    text = torch.ones(10, 3)
    t2a = torch.arange(10) % 5
    out = retrieval_metrics(audio, text, t2a)
    assert out["t2a_R@1"] == 0.0 and out["a2t_R@1"] == 0.0
    assert out["t2a_R@5"] == 100.0
    # a2t: each audio's 2 captions ranked 9 and 10 of 10 -> AP = (1/9 + 2/10) / 2
    assert out["a2t_mAP@10"] == pytest.approx(100 * (1 / 9 + 2 / 10) / 2)


def test_map_cutoff_and_min_relevant():
    # one audio with 12 captions all ranked first, plus 3 distractors; AP@10 = 10/10
    n_rel = 12
    audio, text = _from_sim([[1.0, 0.0]] * n_rel + [[0.0, 1.0]] * 3)
    t2a = torch.tensor([0] * n_rel + [1] * 3)
    out = retrieval_metrics(audio, text, t2a)
    assert out["a2t_mAP@10"] == pytest.approx(100.0)
    # a2t for audio 0 with only 1 relevant at rank 11 -> AP 0, R@10 miss
    sims = [[1.0, 0.0]] + [[2.0, 0.0]] * 10 + [[0.0, 1.0]]
    audio, text = _from_sim(sims)
    t2a = torch.tensor([0] + [1] * 11)
    out = retrieval_metrics(audio, text, t2a)
    assert out["a2t_R@10"] == pytest.approx(50.0)  # audio 1 hits, audio 0 misses


def _reference(audio, text, t2a, ks):
    """Straightforward per-query loops with explicit pessimistic sorting."""
    sim = text @ audio.T  # (M, N)
    m, n = sim.shape
    out = {}
    t_ranks = [int((sim[t] >= sim[t, t2a[t]]).sum()) for t in range(m)]
    a_res = []
    for a in range(n):
        rel = [t for t in range(m) if t2a[t] == a]
        order = sorted(range(m), key=lambda t: (-float(sim[t, a]), t in rel))
        ranks = sorted(order.index(t) + 1 for t in rel)
        ap = sum((i + 1) / r for i, r in enumerate(ranks) if r <= 10) / min(len(rel), 10)
        a_res.append((ranks[0], ap))
    for k in ks:
        out[f"t2a_R@{k}"] = 100 * sum(r <= k for r in t_ranks) / m
        out[f"a2t_R@{k}"] = 100 * sum(r <= k for r, _ in a_res) / n
    out["t2a_mAP@10"] = 100 * sum(1 / r for r in t_ranks if r <= 10) / m
    out["a2t_mAP@10"] = 100 * sum(ap for _, ap in a_res) / n
    for name, ranks in (("t2a", t_ranks), ("a2t", [r for r, _ in a_res])):
        out[f"{name}_meanR"] = sum(ranks) / len(ranks)
        srt = sorted(r - 1 for r in ranks)  # numpy-style median of 0-based ranks, floored, +1
        mid = (
            srt[len(srt) // 2]
            if len(srt) % 2
            else (srt[len(srt) // 2 - 1] + srt[len(srt) // 2]) / 2
        )
        out[f"{name}_medR"] = float(int(mid) + 1)
    return out


@pytest.mark.parametrize("chunk_size", [1, 3, 256])
def test_matches_reference_with_many_ties(chunk_size):
    g = torch.Generator().manual_seed(0)
    n = 17
    t2a = torch.cat([torch.arange(n), torch.randint(0, n, (25,), generator=g)])
    # small integer embeddings -> exact dot products with lots of ties
    audio = torch.randint(-1, 2, (n, 4), generator=g).float()
    text = torch.randint(-1, 2, (len(t2a), 4), generator=g).float()
    ks = (1, 5, 10)
    out = retrieval_metrics(audio, text, t2a, ks=ks, chunk_size=chunk_size)
    ref = _reference(audio, text, t2a, ks)
    for key, value in ref.items():
        assert out[key] == pytest.approx(value), key


def test_audio_without_caption_rejected():
    with pytest.raises(ValueError):
        retrieval_metrics(torch.eye(3), torch.eye(3)[:2], torch.tensor([0, 1]))


def test_median_rank_by_hand():
    assert median_rank(torch.tensor([3])) == 3.0
    assert median_rank(torch.tensor([1, 2])) == 1.0  # 0-based median 0.5 -> floor 0 -> 1
    assert median_rank(torch.tensor([1, 4])) == 2.0  # 0-based median 1.5 -> 1 -> 2
    assert median_rank(torch.tensor([7, 2, 2, 5])) == 3.0  # 0-based 1, 1, 4, 6 -> 2.5 -> 3
    assert median_rank(torch.tensor([5, 1, 9])) == 5.0


def test_any_caption_hit_rule_and_multi_caption_ranks():
    # 3 audios; audio 0 has 3 captions of which only the LAST is ranked first for it
    audio, text = _from_sim(
        [
            [0.1, 0.5, 0.0],  # t0 -> a0
            [0.2, 0.6, 0.0],  # t1 -> a0
            [0.9, 0.0, 0.0],  # t2 -> a0: top caption of a0
            [0.3, 0.8, 0.1],  # t3 -> a1: top caption of a1
            [0.0, 0.7, 0.4],  # t4 -> a2
        ]
    )
    t2a = torch.tensor([0, 0, 0, 1, 2])
    out = retrieval_metrics(audio, text, t2a, ks=(1, 2))
    # a2t: a0's captions rank (by a0 score: t2 .9, t3 .3, t1 .2, t0 .1, t4 0) -> best is t2 = 1
    # a1: t3 .8, t4 .7, t1 .6, t0 .5, t2 0 -> 1; a2: t4 .4, t3 .1, rest 0 -> 1
    assert out["a2t_R@1"] == pytest.approx(100.0)
    assert out["a2t_medR"] == 1.0 and out["a2t_meanR"] == pytest.approx(1.0)
    # a0's AP counts all three captions: ranks 1, 3, 4 -> (1 + 2/3 + 3/4) / 3
    assert out["a2t_mAP@10"] == pytest.approx(100 * ((1 + 2 / 3 + 3 / 4) / 3 + 1 + 1) / 3)
    # t2a: every caption is a query; t0 and t1 rank a1 above a0 -> ranks 2, 2, 1, 1, 2
    assert retrieval_ranks(audio, text, t2a)["t2a"].tolist() == [2, 2, 1, 1, 2]
    assert out["t2a_R@1"] == pytest.approx(40.0)
    assert out["t2a_R@2"] == pytest.approx(100.0)
    assert out["t2a_medR"] == 2.0 and out["t2a_meanR"] == pytest.approx(8 / 5)


def test_constant_embeddings_ranks_are_pessimistic():
    out = retrieval_metrics(torch.ones(4, 2), torch.ones(8, 2), torch.arange(8) % 4)
    assert out["t2a_medR"] == 4.0 and out["t2a_meanR"] == pytest.approx(4.0)
    # each audio's 2 captions are ranked 7 and 8 of 8: its best rank is 7
    assert out["a2t_medR"] == 7.0 and out["a2t_meanR"] == pytest.approx(7.0)


def test_caption_queries_and_rows():
    keep, texts, owner = caption_queries([["a", "b"], [], ["  "], ["c"]])
    assert keep == [0, 3] and texts == ["a", "b", "c"] and owner.tolist() == [0, 0, 1]
    res = retrieval_metrics(torch.eye(2), torch.eye(2)[owner], owner)
    rows = retrieval_rows("m", "g", res)
    assert [(r["task"], r["metric"]) for r in rows][:6] == [
        ("audio→text", m) for m in ("R@1", "R@5", "R@10", "mAP@10", "medR", "meanR")
    ]
    assert len(rows) == 12 and {r["group"] for r in rows} == {"g"}
    assert [r["chance"] is not None for r in rows] == [
        m == "R@1" for m in (r["metric"] for r in rows)
    ]
    assert LOWER_IS_BETTER_METRICS == {"medR", "meanR"}


def test_retrieval_evaluator_rows_and_uncaptioned_clips():
    audio = torch.eye(3)
    es = EmbeddingSet(["a", "b", "c"], torch.zeros(3, 1), audio, {}, [["x0", "y0"], [], ["x2"]])
    lookup = {"x0": audio[0], "y0": audio[1], "x2": audio[2]}  # y0 is closer to clip b

    def text_fn(texts):
        return torch.stack([lookup[t] for t in texts])

    ev = EVALUATORS.build({"name": "retrieval"}, "e")
    rows = ev("m", {"test": es}, text_fn)
    val = {(r["task"], r["metric"]): r["value"] for r in rows}
    # clip b has no caption: left out, so y0 is ranked 2nd among {a, c} for t2a
    assert val[("text→audio", "R@1")] == pytest.approx(100 * 2 / 3)
    assert val[("text→audio", "meanR")] == pytest.approx(4 / 3)
    assert val[("audio→text", "R@1")] == pytest.approx(100.0)
    assert val[("audio→text", "medR")] == 1.0
    chance = {r["task"]: r["chance"] for r in rows if r["metric"] == "R@1"}
    assert chance["text→audio"] == pytest.approx(50.0)
    assert ev("m", {"test": es}, None) == []
