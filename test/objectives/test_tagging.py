"""Tagging objective: vocabulary file, single/multi-label losses equal a direct computation,
unlabelled clips ignored (no NaN), pooling padding-invariant, tiny overfit, label_vocab CLI."""

from __future__ import annotations

import gzip
import json
import math

import pytest
import torch
import torch.nn.functional as F
from fixtures import write_text

from toolkit.bin.label_vocab import main as label_vocab_main
from toolkit.config import ConfigError
from toolkit.objectives.tagging import Tagging, average_precision, read_label_vocab
from toolkit.registry import OBJECTIVES


@pytest.fixture
def vocab(tmp_path) -> str:
    """A label-list file's path as a config holds it (a string)."""
    text = (
        "sound_pitch\thigh\nsound_pitch\tlow\nsound_pitch\tmiddle\n"
        "sound_event\tbark\nsound_event\tdog\nsound_event\train\n"
    )
    return str(write_text(tmp_path / "labels.txt", text))


def test_read_vocab_formats_and_errors(tmp_path, vocab):
    assert read_label_vocab(vocab) == {
        "sound_pitch": ["high", "low", "middle"],
        "sound_event": ["bark", "dog", "rain"],
    }
    assert list(read_label_vocab(vocab, ["sound_event"])) == ["sound_event"]
    one = write_text(tmp_path / "one.txt", "cat\ndog\n\n")
    assert read_label_vocab(one, ["animal"]) == {"animal": ["cat", "dog"]}
    with pytest.raises(ConfigError, match="name its task"):
        read_label_vocab(one)
    with pytest.raises(ConfigError, match=r"objective\.vocab: .*nope\.txt does not exist"):
        read_label_vocab(tmp_path / "nope.txt")
    with pytest.raises(ConfigError, match=r"mixed\.txt:2: expected 'task<TAB>label'"):
        read_label_vocab(write_text(tmp_path / "mixed.txt", "a_b\tx\ny\n"))
    with pytest.raises(ConfigError, match="duplicate label 'x'"):
        read_label_vocab(write_text(tmp_path / "dup.txt", "a_b\tx\na_b\tx\n"))
    with pytest.raises(ConfigError, match="task.s. sound_tempo not in"):
        read_label_vocab(vocab, ["sound_tempo"])


def test_single_label_loss_ignores_unlabelled_and_unknown(vocab):
    torch.manual_seed(0)
    obj = Tagging(8, vocab, tasks=["sound_pitch"])
    hidden, lens = torch.randn(4, 5, 8), torch.tensor([5, 3, 4, 2])
    labels = {"sound_pitch": ["low", None, "middle", "purple"]}  # purple: not in the vocabulary
    out = obj(hidden, lens, {"labels": labels})
    pooled = torch.stack([hidden[b, : lens[b]].mean(0) for b in range(4)])
    logits = obj.head(pooled)
    ref = F.cross_entropy(logits[[0, 2]], torch.tensor([1, 2]))
    torch.testing.assert_close(out["loss"], ref)
    acc = (logits[[0, 2]].argmax(1) == torch.tensor([1, 2])).float().mean()
    torch.testing.assert_close(out["acc"], acc)
    out["loss"].backward()
    assert obj.head.weight.grad.abs().sum() > 0


def test_multi_label_lists_and_separator(vocab):
    torch.manual_seed(0)
    obj = OBJECTIVES.build(
        {"name": "tagging", "vocab": vocab, "multi_label": True, "separator": ";"},
        key="objective",
        encoder_dim=8,
        vocab_size=99,  # supplied by code to every objective; tagging does not take it
    )
    assert obj.tasks == ["sound_pitch", "sound_event"]
    hidden, lens = torch.randn(3, 4, 8), torch.tensor([4, 4, 2])
    labels = {
        "sound_event": [["dog", "bark"], "rain; dog", None],
        "sound_pitch": ["high", None, None],
    }
    out = obj(hidden, lens, {"labels": labels})
    pooled = torch.stack([hidden[b, : lens[b]].mean(0) for b in range(3)])
    logits = obj.head(pooled)
    ev = torch.tensor([[1.0, 1, 0], [0, 1, 1]])
    pitch = torch.tensor([[1.0, 0, 0]])
    loss_ev = F.binary_cross_entropy_with_logits(logits[:2, 3:], ev)
    loss_pitch = F.binary_cross_entropy_with_logits(logits[:1, :3], pitch)
    torch.testing.assert_close(out["loss"], (loss_ev + loss_pitch) / 2)
    torch.testing.assert_close(out["loss_sound_event"], loss_ev.detach())
    ap = torch.cat(
        [average_precision(logits[:2, 3:], ev), average_precision(logits[:1, :3], pitch)]
    )
    torch.testing.assert_close(out["map"], ap.mean().detach())


def test_average_precision_by_hand():
    scores = torch.tensor([[0.9, 0.8, 0.1, 0.5]])
    target = torch.tensor([[1.0, 0.0, 1.0, 0.0]])
    # ranking: 0 (hit, P=1/1), 1, 3, 2 (hit, P=2/4) → AP = (1 + 0.5) / 2
    assert float(average_precision(scores, target)) == pytest.approx(0.75)


def test_no_labels_in_batch_is_zero_not_nan(vocab):
    obj = Tagging(8, vocab, pooling="attention")
    hidden = torch.randn(2, 4, 8, requires_grad=True)
    for labels in ({}, {"sound_pitch": [None, None], "sound_event": [None, None]}):
        out = obj(hidden, torch.tensor([4, 0]), {"labels": labels})
        assert float(out["loss"].detach()) == 0.0 and float(out["acc"]) == 0.0
        out["loss"].backward()
        assert all(torch.isfinite(p.grad).all() for p in obj.parameters() if p.grad is not None)
        assert obj.pool.score.weight.grad is not None  # every parameter stays in the graph (DDP)


def test_single_label_rejects_several_labels(vocab):
    obj = Tagging(8, vocab, tasks=["sound_event"])
    with pytest.raises(ValueError, match="multi_label: true"):
        obj(torch.randn(1, 2, 8), torch.tensor([2]), {"labels": {"sound_event": [["dog", "bark"]]}})


@pytest.mark.parametrize("pooling", ["mean", "attention"])
def test_pooling_ignores_padding(vocab, pooling):
    torch.manual_seed(0)
    obj = Tagging(8, vocab, pooling=pooling).eval()
    hidden, lens = torch.randn(2, 5, 8), torch.tensor([5, 3])
    padded = torch.cat([hidden, torch.randn(2, 4, 8) * 100], dim=1)
    padded[1, 3:] = 1e3
    a = obj.classify(hidden, lens)
    b = obj.classify(padded, lens)
    for t in a:
        torch.testing.assert_close(a[t], b[t])


@pytest.mark.parametrize("multi_label", [False, True])
def test_tiny_overfit(vocab, multi_label):
    torch.manual_seed(0)
    obj = Tagging(8, vocab, multi_label=multi_label, pooling="attention")
    hidden, lens = torch.randn(6, 5, 8), torch.tensor([5, 4, 3, 5, 2, 5])
    labels = {
        "sound_pitch": ["high", "low", "middle", None, "low", "high"],
        "sound_event": ["dog", "rain", None, "bark", "dog", "rain"],
    }
    opt = torch.optim.Adam(obj.parameters(), lr=5e-2)
    losses = []
    for _ in range(40):
        out = obj(hidden, lens, {"labels": labels})
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(float(out["loss"].detach()))
    assert losses[-1] < 0.2 * losses[0]
    assert float(out["map" if multi_label else "acc"]) == 1.0


def _manifest(path, labels: list[dict]) -> str:
    """A tiny cut manifest whose supervisions carry ``labels`` (no audio needed)."""
    with gzip.open(path, "wt") as f:
        for i, lab in enumerate(labels):
            rec = {
                "id": f"r{i}",
                "sources": [{"type": "file", "channels": [0], "source": f"r{i}.wav"}],
                "sampling_rate": 16000,
                "num_samples": 16000,
                "duration": 1.0,
                "channel_ids": [0],
            }
            sup = {
                "id": f"r{i}",
                "recording_id": f"r{i}",
                "start": 0.0,
                "duration": 1.0,
                "channel": 0,
                "custom": {"caption": ["x"], "domain": "sound", "source": "t", **lab},
            }
            cut = {
                "id": f"r{i}",
                "start": 0.0,
                "duration": 1.0,
                "channel": 0,
                "supervisions": [sup],
                "recording": rec,
                "type": "MonoCut",
            }
            f.write(json.dumps(cut) + "\n")
    return str(path)


def test_label_vocab_cli(tmp_path):
    a = _manifest(
        tmp_path / "a.jsonl.gz",
        [
            {"sound_pitch": "low", "sound_event": "dog;bark"},
            {"sound_pitch": "high"},
            {"sound_event": "rain"},
        ],
    )
    b = _manifest(tmp_path / "b.jsonl.gz", [{"sound_pitch": "middle", "music_genre": "jazz"}])
    out = tmp_path / "labels.txt"
    assert label_vocab_main([a, b, "-o", str(out)]) == 0
    assert read_label_vocab(out) == {
        "music_genre": ["jazz"],
        "sound_event": ["dog;bark", "rain"],
        "sound_pitch": ["high", "low", "middle"],
    }
    label_vocab_main([a, "--tasks", "sound_event,sound_pitch", "--separator", ";", "-o", str(out)])
    assert out.read_text().splitlines() == [
        "sound_event\tbark",
        "sound_event\tdog",
        "sound_event\train",
        "sound_pitch\thigh",
        "sound_pitch\tlow",
    ]
    with pytest.raises(ConfigError, match="no labels for music_tempo"):
        label_vocab_main([a, "--tasks", "music_tempo", "-o", str(out)])
    obj = Tagging(4, str(out), multi_label=True, separator=";")
    out = obj(torch.randn(1, 2, 4), torch.tensor([2]), {"labels": {"sound_event": ["dog"]}})
    assert math.isfinite(float(out["loss"].detach()))
