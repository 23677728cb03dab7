import pytest
import torch

from toolkit.evaluate.zero_shot import (
    DEFAULT_TEMPLATES,
    average_class_embeddings,
    build_prompts,
    zero_shot_accuracy,
)


def test_one_hot_embeddings():
    classes = ["dog", "cat", "rain"]
    class_emb = torch.eye(3)
    labels = ["dog", "cat", "rain", "dog", "cat"]
    audio = torch.tensor(
        [
            [0.9, 0.1, 0.0],  # dog  -> correct
            [0.1, 0.8, 0.1],  # cat  -> correct
            [0.0, 0.1, 0.9],  # rain -> correct
            [0.1, 0.9, 0.0],  # dog  -> predicted cat
            [0.5, 0.5, 0.0],  # cat  -> tie with dog: counted wrong
        ]
    )
    out = zero_shot_accuracy(audio, class_emb, labels, classes)
    assert out == {
        "acc": pytest.approx(60.0),
        "chance_acc": pytest.approx(100 / 3),
        "num_classes": 3,
    }


def test_unknown_label_is_wrong():
    out = zero_shot_accuracy(torch.eye(2), torch.eye(2), ["a", "zzz"], ["a", "b"])
    assert out["acc"] == pytest.approx(50.0)
    assert out["chance_acc"] == pytest.approx(50.0)


def test_build_prompts():
    prompts = build_prompts("speech_language", "french", ["{label}", "{task}: {label} {x}"])
    assert prompts == ["french", "speech_language: french {x}"]
    assert len(build_prompts("t", "dog", DEFAULT_TEMPLATES)) == len(DEFAULT_TEMPLATES)
    assert all("{label}" in t for t in DEFAULT_TEMPLATES)
    assert "the sound of dog" in build_prompts("t", "dog", DEFAULT_TEMPLATES)


def test_average_class_embeddings():
    emb = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 2.0], [0.0, 4.0]])  # C=2, P=2
    out = average_class_embeddings(emb, 2)
    s = 2**-0.5
    torch.testing.assert_close(out, torch.tensor([[s, s], [0.0, 1.0]]))
    with pytest.raises(ValueError):
        average_class_embeddings(emb, 3)
