"""Zero-shot classification from class-prompt text embeddings."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

DEFAULT_TEMPLATES = [
    "{label}",
    "the sound of {label}",
    "a recording of {label}",
    "this is the sound of {label}",
    "an audio clip of {label}",
]


def build_prompts(task: str, class_name: str, templates: Sequence[str]) -> list[str]:
    """One prompt per template with ``{label}`` -> class_name and ``{task}`` -> task.

    Plain string replacement (not ``str.format``), so other braces in a template are kept.
    """
    return [t.replace("{label}", class_name).replace("{task}", task) for t in templates]


def average_class_embeddings(emb: Tensor, num_templates: int) -> Tensor:
    """Average prompt embeddings per class, then L2-normalise.

    Args:
        emb: (C * P, E) prompt embeddings, class-major (rows ``c*P .. c*P+P-1`` are class c).
        num_templates: P.

    Returns:
        (C, E) unit-norm class embeddings.
    """
    if num_templates <= 0 or emb.dim() != 2 or emb.shape[0] % num_templates:
        raise ValueError(f"cannot split {tuple(emb.shape)} into groups of {num_templates}")
    mean = emb.reshape(-1, num_templates, emb.shape[1]).mean(dim=1)
    return F.normalize(mean, dim=-1)


def zero_shot_accuracy(
    audio_emb: Tensor, class_text_emb: Tensor, labels: Sequence[str], class_names: Sequence[str]
) -> dict:
    """Accuracy of predicting the class whose text embedding is most similar (dot product).

    Args:
        audio_emb: (N, E) audio embeddings.
        class_text_emb: (C, E), row c is the embedding of ``class_names[c]``.
        labels: N true class names; a label missing from ``class_names`` counts as wrong.
        class_names: C class names.

    Returns:
        ``{"acc", "chance_acc", "num_classes"}``; accuracies in percent, chance = 100 / C.
        Ties are pessimistic: a sample is correct only if its class scores strictly higher than
        every other class (so constant embeddings score 0, not the share of class 0).
    """
    c = class_text_emb.shape[0]
    if c != len(class_names) or audio_emb.shape[0] != len(labels):
        raise ValueError("class_text_emb / class_names or audio_emb / labels size mismatch")
    if c == 0 or len(labels) == 0:
        raise ValueError("need at least one class and one sample")
    index = {name: i for i, name in enumerate(class_names)}
    target = torch.tensor([index.get(lab, -1) for lab in labels], dtype=torch.long)
    sim = audio_emb.detach().float() @ class_text_emb.detach().float().to(audio_emb.device).T
    sim = sim.cpu()
    known = target >= 0
    correct_score = sim.gather(1, target.clamp_min(0)[:, None])
    num_ge = (sim >= correct_score).sum(dim=1)  # includes the correct class itself
    correct = known & (num_ge == 1)
    return {
        "acc": 100.0 * correct.double().mean().item(),
        "chance_acc": 100.0 / c,
        "num_classes": c,
    }
