"""Zero-shot classification from class-prompt text embeddings, and prompt files.

A prompt folder (the ``zero_shot`` evaluator's ``prompts_dir``) holds plain-text files kept under
version control beside the recipe:

* ``<task>.prompts.txt`` (else ``default.prompts.txt``): one template per line, each containing
  ``{label}`` (and optionally ``{task}``); blank lines and lines starting with ``#`` are ignored.
* ``<task>.classes.tsv`` (optional): ``label<TAB>class name used in the prompt`` per line (same
  comment rules); a label without a line is used as it is.

See docs/evaluation_alignment.md.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from toolkit.evaluate.metrics import label_prior_map, mean_average_precision

DEFAULT_TEMPLATES = [
    "{label}",
    "the sound of {label}",
    "a recording of {label}",
    "this is the sound of {label}",
    "an audio clip of {label}",
]


DEFAULT_PROMPT_FILE = "default.prompts.txt"
PROMPTS_SUFFIX = ".prompts.txt"
CLASSES_SUFFIX = ".classes.tsv"


def _content_lines(path: Path) -> list[tuple[int, str]]:
    """``(line number, stripped text)`` of the lines that are neither blank nor ``#`` comments
    (``#`` as the first non-blank character)."""
    out = []
    for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        text = line.strip()
        if text and not text.startswith("#"):
            out.append((no, text))
    return out


def load_prompt_file(path: str | Path) -> list[str]:
    """Templates of a ``*.prompts.txt`` file (one per line, in file order, duplicates dropped).

    Raises:
        ValueError: a template without ``{label}`` (file:line named), or no template at all.
    """
    path = Path(path)
    out: list[str] = []
    for no, text in _content_lines(path):
        if "{label}" not in text:
            raise ValueError(f"{path}:{no}: a prompt template needs {{label}}, got {text!r}")
        if text not in out:
            out.append(text)
    if not out:
        raise ValueError(f"{path}: no prompt template (only blank or # comment lines)")
    return out


def load_class_names(path: str | Path) -> dict[str, str]:
    """``{label: class name}`` of a ``*.classes.tsv`` file (``label<TAB>name`` per line).

    Raises:
        ValueError: a line without exactly one tab, an empty field, or a label given twice
            (file:line named).
    """
    path = Path(path)
    out: dict[str, str] = {}
    for no, text in _content_lines(path):
        parts = text.split("\t")
        if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
            raise ValueError(f"{path}:{no}: expected 'label<TAB>class name', got {text!r}")
        label, name = parts[0].strip(), parts[1].strip()
        if label in out:
            raise ValueError(f"{path}:{no}: label {label!r} listed twice")
        out[label] = name
    return out


@dataclass
class TaskPrompts:
    """Prompts of one task: ``templates``, ``class_names`` (label → name in the prompt; labels
    not in it are used as they are), and where they came from (``source``: file paths or
    ``"templates option"``; ``digest``: sha1 prefix of the files' bytes, for provenance)."""

    templates: list[str]
    class_names: dict[str, str] = field(default_factory=dict)
    source: str = "templates option"
    digest: str = ""

    def name_of(self, label: str) -> str:
        """The class name used in the prompts for ``label``."""
        return self.class_names.get(label, label)

    def prompts(self, task: str, labels: Sequence[str]) -> list[str]:
        """Class-major prompts: all templates of ``labels[0]``, then ``labels[1]``, ..."""
        return [p for lab in labels for p in build_prompts(task, self.name_of(lab), self.templates)]


def task_prompts(
    task: str, prompts_dir: str | Path | None, fallback: Sequence[str] = DEFAULT_TEMPLATES
) -> TaskPrompts:
    """Templates and class names of ``task``: ``<task>.prompts.txt`` of ``prompts_dir``, else its
    ``default.prompts.txt``, else ``fallback``; class names from ``<task>.classes.tsv`` if that
    exists (else every label is its own class name).

    Raises:
        FileNotFoundError: ``prompts_dir`` is given but is not a folder.
    """
    if prompts_dir is None:
        return TaskPrompts(list(fallback))
    folder = Path(prompts_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"prompts_dir {folder} is not a folder")
    used: list[Path] = []
    templates = list(fallback)
    for name in (f"{task}{PROMPTS_SUFFIX}", DEFAULT_PROMPT_FILE):
        if (folder / name).is_file():
            templates = load_prompt_file(folder / name)
            used.append(folder / name)
            break
    classes: dict[str, str] = {}
    if (folder / f"{task}{CLASSES_SUFFIX}").is_file():
        classes = load_class_names(folder / f"{task}{CLASSES_SUFFIX}")
        used.append(folder / f"{task}{CLASSES_SUFFIX}")
    sources = [str(p) for p in used]
    if not used or not used[0].name.endswith(PROMPTS_SUFFIX):
        sources.insert(0, "templates option")
    digest = hashlib.sha1(b"".join(p.read_bytes() for p in used)).hexdigest()[:12] if used else ""
    return TaskPrompts(templates, classes, ", ".join(sources), digest)


def prompts_hash(templates: Sequence[str], class_names: dict[str, str] | None = None) -> str:
    """First 12 hex digits of the SHA-1 of the templates (one per line) and the label → class
    name table (``label<TAB>name`` lines, sorted): names the prompt set behind a zero-shot
    number (recorded by the evaluator and the model API / CLI)."""
    text = "\n".join(templates)
    if class_names:
        text += "\n\n" + "\n".join(f"{k}\t{v}" for k, v in sorted(class_names.items()))
    return hashlib.sha1(text.encode()).hexdigest()[:12]


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


def _num_classes(
    audio_emb: Tensor, class_text_emb: Tensor, labels: Sequence, class_names: Sequence[str]
) -> int:
    """C, after checking that embeddings, labels and class names agree in size."""
    c = class_text_emb.shape[0]
    if c != len(class_names) or audio_emb.shape[0] != len(labels):
        raise ValueError("class_text_emb / class_names or audio_emb / labels size mismatch")
    if c == 0 or len(labels) == 0:
        raise ValueError("need at least one class and one sample")
    return c


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
    c = _num_classes(audio_emb, class_text_emb, labels, class_names)
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


def zero_shot_map(
    audio_emb: Tensor,
    class_text_emb: Tensor,
    labels: Sequence[Sequence[str]],
    class_names: Sequence[str],
) -> dict:
    """Multi-label zero-shot: every class is scored by its text similarity, then macro mAP.

    Args:
        audio_emb: (N, E) audio embeddings.
        class_text_emb: (C, E), row c is the embedding of ``class_names[c]``.
        labels: N label lists (a clip may have none); labels outside ``class_names`` are
            ignored (no row scores them) and counted in ``num_unknown``.
        class_names: C class names.

    Returns:
        ``{"mAP", "chance_map", "num_classes", "num_scored", "num_unknown"}``: mAP in percent
        over the classes with a positive clip (:func:`~toolkit.evaluate.metrics.mean_average_precision`;
        ``num_scored`` of them), chance = :func:`~toolkit.evaluate.metrics.label_prior_map`.
    """
    c = _num_classes(audio_emb, class_text_emb, labels, class_names)
    index = {name: i for i, name in enumerate(class_names)}
    target = torch.zeros(len(labels), c)
    unknown = 0
    for row, labs in enumerate(labels):
        for lab in labs:
            if lab in index:
                target[row, index[lab]] = 1.0
            else:
                unknown += 1
    sim = audio_emb.detach().float() @ class_text_emb.detach().float().to(audio_emb.device).T
    res = mean_average_precision(sim.cpu(), target)
    return {
        "mAP": res.map,
        "chance_map": label_prior_map(target),
        "num_classes": c,
        "num_scored": res.num_scored,
        "num_unknown": unknown,
    }


def class_embeddings(
    text_fn: Callable[[list[str]], Tensor], task: str, labels: Sequence[str], prompts: TaskPrompts
) -> Tensor:
    """``(C, E)`` unit-norm class embeddings: every class's prompts embedded by ``text_fn``
    (``list[str] -> (M, E)``) and averaged (:func:`average_class_embeddings`)."""
    emb = text_fn(prompts.prompts(task, labels))
    return average_class_embeddings(emb, len(prompts.templates))
