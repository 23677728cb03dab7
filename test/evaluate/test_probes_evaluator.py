"""The ``probe`` evaluator end to end on synthetic EmbeddingSets: registration and YAML checks,
single- and multi-label tasks, rows with std over seeds, unseen labels, the pooled fallback."""

from __future__ import annotations

import pytest
import torch

from toolkit.config import ConfigError
from toolkit.evaluate.embeddings import EmbeddingSet
from toolkit.evaluate.probes import Probe, encode_labels, is_multi_label, probe_group
from toolkit.evaluate.report import COLUMNS
from toolkit.registry import EVALUATORS

D = 8
PATTERNS = torch.randn(6, D, generator=torch.Generator().manual_seed(11)) * 2  # 3 classes, 3 tags
TAGS = ["bark", "rain", "speech"]
FAST = {"steps": 100, "batch_size": 16, "lr_grid": [1e-2, 3e-2]}


def split(n: int, seed: int, frames: bool = True) -> EmbeddingSet:
    """Clips with a single-label ``domain_class`` task (class = pattern k in every frame), a
    multi-label ``domain_tags`` task (list of tags, each adding its own pattern) and a ``noise`` task
    whose labels are unrelated to the audio; every 7th clip is unlabelled (None)."""
    g = torch.Generator().manual_seed(seed)
    fr, cls, tags, noise = [], [], [], []
    for i in range(n):
        k = i % 3
        on = [j for j in range(3) if torch.rand(1, generator=g) < 0.4]
        x = PATTERNS[k] + sum((PATTERNS[3 + j] for j in on), torch.zeros(D))
        x = x + 0.5 * torch.randn(int(torch.randint(3, 9, (1,), generator=g)), D, generator=g)
        fr.append(x.half())
        cls.append(None if i % 7 == 6 else f"class{k}")
        tags.append([TAGS[j] for j in on])
        noise.append(str(int(torch.randint(0, 2, (1,), generator=g))))
    pooled = torch.stack([f.float().mean(0) for f in fr])
    labels = {"domain_class": cls, "domain_tags": tags, "noise": noise}
    extra = {"frames": fr} if frames else {}
    ids = [f"{seed}-{i}" for i in range(n)]
    return EmbeddingSet(ids, pooled, None, labels, [[] for _ in ids], extra=extra)


def splits(frames: bool = True) -> dict[str, EmbeddingSet]:
    return {
        "train": split(90, 1, frames),
        "dev": split(42, 2, frames),
        "test": split(42, 3, frames),
    }


def test_registered_and_yaml_checked():
    assert "probe" in EVALUATORS.names()
    assert EVALUATORS.get("probe") is Probe and Probe.needs == frozenset({"frames"})
    ev = EVALUATORS.build({"name": "probe", "poolings": ["attention"], "seeds": [0, 1]}, "e")
    assert ev.poolings == ["attention"] and ev.seeds == [0, 1]
    with pytest.raises(ConfigError, match="poolings"):
        EVALUATORS.build({"name": "probe", "poolings": ["max"]}, "e")
    with pytest.raises(ConfigError, match="lr_grid"):
        EVALUATORS.build({"name": "probe", "lr_grid": []}, "e")
    with pytest.raises(ConfigError, match="seeds"):
        Probe(seeds=[0, 0])
    with pytest.raises(ConfigError, match="unknown key"):
        EVALUATORS.build({"name": "probe", "epochs": 3}, "e")


def test_label_encoding():
    assert is_multi_label([None, "a", ["b"]]) and not is_multi_label(["a", None])
    vocab = {"a": 0, "b": 1}
    y, unknown = encode_labels(["b", "c", "a"], vocab, multi_label=False)
    assert y.tolist() == [1, -1, 0] and unknown == 1
    y, unknown = encode_labels([["a", "b"], [], "b", ["z"]], vocab, multi_label=True)
    assert y.tolist() == [[1, 1], [0, 0], [0, 1], [0, 0]] and unknown == 1


def test_end_to_end_rows():
    ev = Probe(**FAST, seeds=[0, 1])
    rows = ev("pretrained", splits(), None)
    by = {(r["group"], r["task"]): r for r in rows}
    assert len(rows) == 6 and len(by) == 6  # 3 tasks x 2 poolings
    for pooling in ("mean", "attention"):
        group = probe_group(pooling)
        assert group == f"probe ({pooling} pool)"
        single, multi, noise = (by[(group, t)] for t in ("domain_class", "domain_tags", "noise"))
        assert single["metric"] == "acc" and single["value"] == pytest.approx(100.0)
        test_cls = [v for v in split(42, 3).labels["domain_class"] if v is not None]
        assert single["chance"] == pytest.approx(100 * test_cls.count("class0") / len(test_cls))
        assert multi["metric"] == "mAP" and multi["value"] > 95.0
        assert 0 < multi["chance"] < 60.0
        assert noise["value"] < 80.0  # labels unrelated to the audio: no better than guessing
        for r in (single, multi, noise):
            assert set(COLUMNS) <= set(r) and r["model"] == "pretrained"
            assert r["std"] >= 0.0  # two seeds
    # one seed: no std key; tasks restricts the tasks, an unknown task is skipped
    rows = Probe(**FAST, poolings=["mean"], tasks=["domain_class", "nope"])("m", splits(), None)
    assert [(r["group"], r["task"]) for r in rows] == [("probe (mean pool)", "domain_class")]
    assert "std" not in rows[0]


def test_deterministic():
    ev = Probe(**FAST, poolings=["attention"], tasks=["noise"])
    assert ev("m", splits(), None) == ev("m", splits(), None)


def test_unseen_and_missing_labels():
    s = splits()
    s["test"].labels["domain_class"][0] = "class9"  # unseen in train: counted wrong
    rows = Probe(**FAST, poolings=["mean"], tasks=["domain_class"])("m", s, None)
    n = sum(v is not None for v in s["test"].labels["domain_class"])
    assert rows[0]["value"] == pytest.approx(100.0 * (n - 1) / n)
    s["dev"].labels["domain_class"] = [None] * 42  # no dev labels: lr cannot be chosen
    assert Probe(**FAST, tasks=["domain_class"])("m", s, None) == []


def test_models_without_frames_use_pooled_vectors():
    rows = Probe(**FAST, tasks=["domain_class"])("logmel_stats", splits(frames=False), None)
    assert [r["group"] for r in rows] == ["probe (mean pool)"]
    assert rows[0]["value"] == pytest.approx(100.0)
    assert Probe(**FAST, pooled_fallback=False)("x", splits(frames=False), None) == []
    assert Probe(**FAST, poolings=["attention"])("x", splits(frames=False), None) == []
