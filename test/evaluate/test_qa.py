"""The ``qa`` evaluator: answer normalisation, exact match and token F1 on hand-computed cases,
the frame adapter (shapes, padding invariance, frame shortening), prompt assembly, a toy problem
(frames that encode the answer) learnt to high EM while random frames stay near chance, and the
evaluator end to end on a synthetic EmbeddingSet."""

from __future__ import annotations

import pytest
import torch

from toolkit.config import ConfigError
from toolkit.evaluate.captioning import pad_frames
from toolkit.evaluate.embeddings import EmbeddingSet
from toolkit.evaluate.qa import (
    FrameAdapter,
    assemble,
    exact_match,
    majority_answer,
    normalise_answer,
    score_rows,
    shorten_frames,
    token_f1,
)
from toolkit.evaluate.qa_data import QAItem
from toolkit.registry import EVALUATORS, LANGUAGE_MODELS

CLASSES = ["dog bark", "rain", "siren", "bell"]
LM = {"name": "tiny", "vocab": "word", "dim": 32, "num_layers": 2, "num_heads": 2}
LM.update(ff_dim=64, steps=600, batch_size=16, lr=1e-2, dropout=0.0, device="cpu")
QA = {"name": "qa", "lm": LM, "describe": False, "stack": 2, "adapter_dim": 32, "steps": 400}
QA.update(lr=6e-3, warmup_steps=10, device="cpu")


def test_normalise_exact_match_token_f1():
    assert normalise_answer("The Dog-bark!  ") == "dog bark"
    assert normalise_answer("An apple, a pear") == "apple pear"
    assert exact_match("a Siren.", ["siren"]) == 1.0
    assert exact_match("sirens", ["siren", "bell"]) == 0.0
    assert exact_match("bell", ["siren", "Bell"]) == 1.0
    # pred "dog barks loudly" vs gold "the dog barks": common {dog, barks} = 2;
    # P = 2/3, R = 2/2 → F1 = 2 * (2/3) / (5/3) = 0.8
    assert token_f1("dog barks loudly", ["the dog barks"]) == pytest.approx(0.8)
    # best over references; multiplicity counts: pred "rain rain" vs "rain": P=1/2, R=1 → 2/3
    assert token_f1("rain rain", ["bell", "rain"]) == pytest.approx(2 / 3)
    assert token_f1("", ["the"]) == 1.0  # both empty after normalisation
    assert token_f1("", ["rain"]) == 0.0 and token_f1("rain", ["a"]) == 0.0
    items = [QAItem(0, "a", "t", "q", (x,)) for x in ("Rain", "bell", "rain.")]
    assert majority_answer(items) == "Rain" and majority_answer([]) is None


def test_score_rows_hand_computed():
    train = [QAItem(0, "a", "t1", "q", ("rain",))] * 2 + [QAItem(1, "b", "t1", "q", ("bell",))]
    train += [QAItem(2, "c", "t2", "q", ("a dog barks",))]
    test = [
        QAItem(0, "x", "t1", "q", ("rain",)),
        QAItem(1, "y", "t1", "q", ("bell",)),
        QAItem(2, "z", "t2", "q", ("the dog barks loudly",)),
    ]
    rows = score_rows("m", test, ["Rain!", "siren", "dog barks"], train, {"k": 1})
    got = {(r["task"], r["metric"]): (r["value"], r["chance"]) for r in rows}
    assert got[("t1", "EM")] == (50.0, 50.0)  # "rain" right, "siren" wrong; majority "rain"
    assert got[("t2", "EM")] == (0.0, 0.0)
    # t2 F1: pred {dog, barks} vs gold {dog, barks, loudly}: P=1, R=2/3 → 0.8; chance the same
    assert got[("t2", "F1")][0] == pytest.approx(80.0)
    assert got[("t2", "F1")][1] == pytest.approx(80.0)
    assert got[("all", "EM")][0] == pytest.approx(100 / 3)
    assert got[("all", "F1")][0] == pytest.approx((100 + 0 + 80) / 3)
    assert all(r["group"] == "qa" and r["k"] == 1 and r["model"] == "m" for r in rows)


def test_frame_adapter_shapes_and_padding_invariance():
    torch.manual_seed(0)
    ad = FrameAdapter(6, 10, stack=3, hidden=12).eval()
    clips = [torch.randn(7, 6), torch.randn(3, 6), torch.randn(1, 6)]
    x, lens = pad_frames(clips)
    tok, tlens = ad(x, lens)
    assert tok.shape == (3, 3, 10) and tlens.tolist() == [3, 1, 1]
    for i, c in enumerate(clips):
        alone, n = ad(c[None], torch.tensor([c.shape[0]]))
        assert torch.allclose(tok[i, : int(n)], alone[0], atol=1e-6)
    # stacking concatenates consecutive frames: frames 3..5 alone give token 1 of clip 0
    mid, _ = ad(clips[0][None, 3:6], torch.tensor([3]))
    assert torch.allclose(tok[0, 1], mid[0, 0], atol=1e-6)
    ad(x, lens)[0].sum().backward()
    assert all(p.grad is not None for p in ad.parameters())


def test_shorten_frames():
    x = torch.arange(10, dtype=torch.float32)[:, None].repeat(1, 2)
    assert shorten_frames(x, 10) is x
    y = shorten_frames(x, 4)  # runs of 3: [0,1,2] [3,4,5] [6,7,8] [9]
    assert y[:, 0].tolist() == [1.0, 4.0, 7.0, 9.0]


def test_assemble_places_audio_and_targets():
    lm = LANGUAGE_MODELS.build({**LM, "steps": 1}, "lm", texts=["what is it? rain"])
    ad = FrameAdapter(4, lm.hidden_size, stack=2, hidden=8)
    frames = [torch.randn(4, 4), torch.randn(1, 4)]
    q = lm.tokenizer.encode("what is it?")
    a = lm.tokenizer.encode("rain") + [lm.eos_id]
    emb, mask, tgt = assemble(lm, ad, frames, [0, 1], [q, q], [a, a], torch.device("cpu"))
    # clip 0: BOS + 2 audio + 4 question + 2 answer = 9; clip 1: 1 audio → left padded by 1
    assert emb.shape == (2, 9, lm.hidden_size) and mask.sum(1).tolist() == [9, 8]
    assert not mask[1, 0]
    audio, _ = ad(*pad_frames(frames))
    assert torch.allclose(emb[0, 1:3], audio[0, :2]) and torch.allclose(emb[1, 2], audio[1, 0])
    assert torch.equal(emb[0, 3:7], lm.embed(torch.tensor(q)))
    # the last question token predicts the first answer id; the answer's last id predicts nothing
    assert tgt[0].tolist() == [-100] * 6 + a + [-100]
    assert tgt[1].tolist() == [-100] * 6 + a + [-100]
    _, _, none = assemble(lm, ad, frames, [0], [q], None, torch.device("cpu"))
    assert none is None


def toy_splits(informative: bool) -> dict[str, EmbeddingSet]:
    """Clips of 4 sound classes; informative frames carry the class prototype (+ noise)."""
    protos = 3 * torch.randn(len(CLASSES), 12, generator=torch.Generator().manual_seed(123))
    out = {}
    for seed, (split, n) in enumerate((("train", 160), ("dev", 8), ("test", 40))):
        g = torch.Generator().manual_seed(seed)
        frames, labels, caps = [], [], []
        for i in range(n):
            c = (i * 7 + seed) % len(CLASSES)
            x = torch.randn(int(torch.randint(4, 12, (1,), generator=g)), 12, generator=g)
            frames.append((x + protos[c] if informative else x).half())
            labels.append(CLASSES[c])
            caps.append([f"a {CLASSES[c]} is heard"])
        ids = [f"{split}{i}" for i in range(n)]
        out[split] = EmbeddingSet(
            ids, torch.zeros(n, 2), None, {"sound_event": labels}, caps, extra={"frames": frames}
        )
    return out


@pytest.fixture(scope="module")
def toy_results():
    torch.manual_seed(0)
    ev = EVALUATORS.build(QA, "eval.evaluators[0]", tokenizer=None)
    learnt = ev("informative", toy_splits(True))
    control = ev("random", toy_splits(False))  # the same LM (built once) and the same items
    return ev, learnt, control


def test_toy_problem_is_learnt_while_random_frames_stay_near_chance(toy_results):
    ev, learnt, control = toy_results
    em = {r["model"]: r for r in learnt + control if r["metric"] == "EM"}
    assert em["informative"]["chance"] == pytest.approx(25.0)
    assert em["informative"]["value"] >= 70.0, learnt  # 78 here
    assert em["random"]["value"] <= 45.0, control  # 18 here
    assert em["informative"]["value"] - em["random"]["value"] >= 35.0
    assert ev.last_timing["train"] > 0


def test_evaluator_end_to_end(tmp_path, toy_results):
    ev0, _, _ = toy_results
    splits = toy_splits(True)
    for caps in splits["test"].captions:  # a second caption for some clips
        caps.append("something else")
    cfg = {**QA, "describe": True, "steps": 5, "dump_dir": str(tmp_path)}
    ev = EVALUATORS.build(cfg, "eval.evaluators[0]", tokenizer=None)
    ev._lm = ev0._lm  # reuse the pretrained toy LM (the text differs only by describe items)
    rows = ev("m", splits)
    tasks = {(r["task"], r["metric"]) for r in rows}
    assert tasks == {(t, m) for t in ("sound_event", "describe", "all") for m in ("EM", "F1")}
    for r in rows:
        assert set(r) >= {"model", "group", "task", "metric", "value", "chance"}
        assert r["group"] == "qa" and 0.0 <= r["value"] <= 100.0
        assert r["qa_templates"] == ev.templates.tag
    assert (tmp_path / "qa_train.jsonl").is_file() and (tmp_path / "qa_test.jsonl").is_file()
    assert len(ev.last_predictions) == 80  # 40 label + 40 describe questions
    # no frames (e.g. the logmel_stats baseline): skipped
    for es in splits.values():
        es.extra.clear()
    assert ev("logmel", splits) == []


def test_config_errors():
    with pytest.raises(ConfigError, match="unknown language_model 'gpt9'"):
        EVALUATORS.build({"name": "qa", "lm": {"name": "gpt9"}}, "eval.evaluators[0]")
    with pytest.raises(ConfigError, match="must be >= 1"):
        EVALUATORS.build({"name": "qa", "stack": 0}, "eval.evaluators[0]")
    with pytest.raises(ConfigError, match="unknown key"):
        EVALUATORS.build({"name": "qa", "lm": {"name": "tiny", "width": 3}}, "q")
