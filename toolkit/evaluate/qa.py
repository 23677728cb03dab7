"""The ``qa`` evaluator: language-involved QA with a frozen encoder, an adapter and a causal LM.

Questions about the train split's clips are generated from their labels and captions with
templates (:mod:`toolkit.evaluate.qa_data`). A fresh adapter (``stack`` consecutive cached
encoder frames concatenated, then a 2-layer MLP into the LM's hidden size) turns a clip's frames
(``extra["frames"]``; the encoder is never run again) into "audio tokens"; the prompt
``[BOS] [audio tokens] [question]`` is followed by ``[answer] [EOS]``. Only the adapter is
trained (teacher forcing, answer tokens only; the LM stays frozen unless ``train_lm``) for a
fixed number of steps; nothing is selected on test. Test answers are generated greedily and
scored by exact match and token F1 after SQuAD-style normalisation (lower case, punctuation and
articles removed), per task and over all items. ``chance`` is the score of always answering the
most frequent training answer of the task.

The language model is a :data:`~toolkit.registry.LANGUAGE_MODELS` block: ``tiny`` (trained by
the recipe on the train split's captions and QA text, cached) or ``hf`` (a local Hugging Face
causal LM). No LLM judge is used. See docs/evaluation_qa.md.
"""

from __future__ import annotations

import copy
import logging
import math
import random
import re
import string
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from toolkit.config import ConfigError
from toolkit.evaluate.captioning import pad_frames
from toolkit.evaluate.embeddings import EmbeddingSet
from toolkit.evaluate.heads.fit import (
    FitSchedule,
    SeededOrder,
    adamw_warmup_cosine,
    optimizer_step,
)
from toolkit.evaluate.heads.lm.base import CausalLM, greedy_generate
from toolkit.evaluate.qa_data import (
    QAItem,
    QATemplates,
    build_qa_items,
    load_templates,
    records_from_embeddings,
    write_qa_jsonl,
)
from toolkit.layers import lengths_to_mask, resolve_device
from toolkit.registry import EVALUATORS, LANGUAGE_MODELS
from toolkit.train.optim import decay_groups

log = logging.getLogger(__name__)
Splits = dict[str, EmbeddingSet]
GROUP = "qa"
ALL_TASKS = "all"
DEFAULT_LM = {"name": "tiny"}
LM_CONTEXT_ARGS = ("tokenizer", "texts")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = re.compile(f"[{re.escape(string.punctuation)}]")


# ----------------------------------------------------------------------------- scoring
def normalise_answer(text: str) -> str:
    """Lower case, punctuation → space, articles (a/an/the) removed, whitespace collapsed."""
    return " ".join(_ARTICLES.sub(" ", _PUNCT.sub(" ", text.lower())).split())


def exact_match(prediction: str, answers: Sequence[str]) -> float:
    """1.0 if the normalised prediction equals any normalised answer, else 0.0."""
    pred = normalise_answer(prediction)
    return float(any(pred == normalise_answer(a) for a in answers))


def _f1(pred: list[str], gold: list[str]) -> float:
    if not pred or not gold:
        return float(pred == gold)
    common = sum((Counter(pred) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def token_f1(prediction: str, answers: Sequence[str]) -> float:
    """Best bag-of-words F1 (normalised tokens, with multiplicity) over ``answers``; two empty
    answers match (1.0), one empty answer matches nothing (0.0)."""
    pred = normalise_answer(prediction).split()
    return max((_f1(pred, normalise_answer(a).split()) for a in answers), default=0.0)


def majority_answer(items: Sequence[QAItem]) -> str | None:
    """The most frequent (normalised) answer over every answer of ``items`` in its first
    spelling; ties go to the answer seen first."""
    counts: Counter[str] = Counter()
    spelling: dict[str, str] = {}
    for it in items:
        for a in it.answers:
            key = normalise_answer(a)
            counts[key] += 1
            spelling.setdefault(key, a)
    if not counts:
        return None
    return spelling[counts.most_common(1)[0][0]]


# ----------------------------------------------------------------------------- adapter
def shorten_frames(frames: Tensor, max_frames: int) -> Tensor:
    """``(T, D)`` → ``(T', D)``, ``T' <= max_frames``: runs of ``ceil(T / max_frames)`` frames
    averaged (the last run may be shorter); unchanged when ``T <= max_frames``."""
    t = frames.shape[0]
    if t <= max_frames:
        return frames
    factor = math.ceil(t / max_frames)
    x = frames.float()
    pad = (-t) % factor
    sums = F.pad(x, (0, 0, 0, pad)).view(-1, factor, x.shape[1]).sum(1)
    counts = torch.full((sums.shape[0], 1), float(factor))
    counts[-1] = factor - pad
    return (sums / counts).to(frames.dtype)


class FrameAdapter(nn.Module):
    """Frame stacking + 2-layer MLP: ``(B, T, D)`` frames → ``(B, ceil(T / stack), out_dim)``.

    ``stack`` consecutive frames are concatenated (the last group zero-filled), layer-normed and
    mapped by Linear → GELU → Linear. Padding never changes a clip's valid tokens.
    """

    def __init__(self, in_dim: int, out_dim: int, stack: int = 4, hidden: int = 256) -> None:
        super().__init__()
        self.stack = stack
        self.norm = nn.LayerNorm(stack * in_dim)
        self.mlp = nn.Sequential(
            nn.Linear(stack * in_dim, hidden), nn.GELU(), nn.Linear(hidden, out_dim)
        )

    def forward(self, frames: Tensor, lens: Tensor) -> tuple[Tensor, Tensor]:
        """frames ``(B, T, D)`` zero padded, lens ``(B,)`` → tokens ``(B, N, out_dim)``,
        token lens ``(B,)`` = ``ceil(lens / stack)``."""
        b, t, d = frames.shape
        frames = frames * lengths_to_mask(lens, t)[..., None].to(frames.dtype)
        frames = F.pad(frames, (0, 0, 0, (-t) % self.stack))
        stacked = frames.reshape(b, -1, self.stack * d)
        return self.mlp(self.norm(stacked)), (lens + self.stack - 1) // self.stack


# ----------------------------------------------------------------------------- sequences
AUDIO = -1  # placeholder id of an audio-token position while assembling


def encode_items(
    items: Sequence[QAItem], lm: CausalLM, max_question_tokens: int, max_answer_tokens: int
) -> list[tuple[int, list[int], list[list[int]]]]:
    """``(clip, question ids, [answer ids + EOS for each answer])`` per item (ids truncated)."""
    out = []
    for it in items:
        q = lm.tokenizer.encode(it.question)[:max_question_tokens]
        answers = [lm.tokenizer.encode(a)[:max_answer_tokens] + [lm.eos_id] for a in it.answers]
        out.append((it.clip, q, answers))
    return out


def assemble(
    lm: CausalLM,
    adapter: FrameAdapter,
    frames: Sequence[Tensor],
    clips: Sequence[int],
    questions: Sequence[list[int]],
    answers: Sequence[list[int]] | None,
    device: torch.device,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Left-padded ``[BOS] [audio] [question] ([answer])`` embeddings.

    Returns:
        ``inputs_embeds (B, L, H)``, ``attention_mask (B, L)`` bool and, with ``answers``, the
        next-token targets ``(B, L)`` (the answer ids at the positions that predict them, -100
        elsewhere).
    """
    enc, lens = pad_frames([frames[c] for c in clips], device)
    audio, alens = adapter(enc, lens)
    bos = [] if lm.bos_id is None else [lm.bos_id]
    seqs, tgts = [], []
    for i, n in enumerate(alens.tolist()):
        prompt = bos + [AUDIO] * n + list(questions[i])
        ans = list(answers[i]) if answers is not None else []
        seqs.append(prompt + ans)
        # position p predicts token p + 1: the last prompt position predicts the first answer id
        tgts.append([-100] * (len(prompt) - 1) + ans + [-100])
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), lm.pad_id, dtype=torch.long)
    raw = torch.full((len(seqs), width), lm.pad_id, dtype=torch.long)
    target = torch.full((len(seqs), width), -100, dtype=torch.long)
    mask = torch.zeros(len(seqs), width, dtype=torch.bool)
    for i, (s, t) in enumerate(zip(seqs, tgts)):
        raw[i, width - len(s) :] = torch.tensor(s)
        target[i, width - len(s) :] = torch.tensor(t)
        mask[i, width - len(s) :] = True
    is_audio = (raw == AUDIO).to(device)
    ids = torch.where(raw == AUDIO, ids, raw).to(device)
    embeds = lm.embed(ids).clone()
    audio_flat = audio[lengths_to_mask(alens, audio.shape[1])]  # clip by clip, in token order
    embeds[is_audio] = audio_flat.to(embeds.dtype)
    return embeds, mask.to(device), (target.to(device) if answers is not None else None)


def train_adapter(
    lm: CausalLM,
    adapter: FrameAdapter,
    frames: Sequence[Tensor],
    examples: Sequence[tuple[int, list[int], list[list[int]]]],
    fit: FitSchedule,
    device: torch.device | str = "cpu",
    train_lm: bool = False,
    lm_lr: float = 1e-4,
) -> list[float]:
    """Teacher-forced training of ``adapter`` (and the LM with ``train_lm``) on ``(clip,
    question ids, answers)`` examples: mean token CE over answer tokens, AdamW (decay on
    matrices), linear warm-up then cosine decay to 1 % of ``fit.lr``. Every draw of an example picks
    one of its answers at random (seeded). Returns the loss of every step."""
    if not examples:
        raise ValueError("no training QA items")
    device = torch.device(device)
    adapter.to(device).train()
    lm.to(device)
    lm.train(train_lm)  # a frozen LM runs without dropout
    lm.requires_grad_(train_lm)
    groups = decay_groups(adapter, fit.weight_decay)
    if train_lm:
        groups += [{**g, "lr": lm_lr} for g in decay_groups(lm, fit.weight_decay)]
    opt, sched = adamw_warmup_cosine(groups, fit.lr, fit.warmup_steps, fit.steps)
    gen = torch.Generator().manual_seed(fit.seed)
    params = [p for g in groups for p in g["params"]]
    order = SeededOrder(len(examples), gen)
    losses = []
    for _ in range(fit.steps):
        batch = [examples[i] for i in order.take(min(fit.batch_size, len(examples)))]
        picks = [a[int(torch.randint(len(a), (1,), generator=gen))] for _, _, a in batch]
        embeds, mask, target = assemble(
            lm, adapter, frames, [c for c, _, _ in batch], [q for _, q, _ in batch], picks, device
        )
        logits = lm(embeds, mask)
        loss = F.cross_entropy(logits.flatten(0, 1).float(), target.flatten(), ignore_index=-100)
        optimizer_step(loss, opt, sched, params, fit.grad_clip)
        losses.append(float(loss.detach()))
    adapter.eval()
    lm.eval()
    lm.requires_grad_(False)
    return losses


@torch.no_grad()
def answer_questions(
    lm: CausalLM,
    adapter: FrameAdapter,
    frames: Sequence[Tensor],
    examples: Sequence[tuple[int, list[int], Any]],
    max_new_tokens: int,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
) -> list[str]:
    """Greedy answers (text) to ``(clip, question ids, _)`` examples, in their order."""
    device = torch.device(device)
    adapter.eval()
    lm.eval()
    banned = [lm.pad_id] + ([] if lm.bos_id is None else [lm.bos_id])
    out: list[str] = []
    for s in range(0, len(examples), batch_size):
        chunk = examples[s : s + batch_size]
        embeds, mask, _ = assemble(
            lm, adapter, frames, [c for c, _, _ in chunk], [q for _, q, _ in chunk], None, device
        )
        ids = greedy_generate(lm, embeds, mask, max_new_tokens, banned)
        out += [lm.tokenizer.decode(row) for row in ids]
    return out


def lm_texts(
    items: Sequence[QAItem], captions: Sequence[Sequence[str]], seed: int = 0
) -> list[str]:
    """Pretraining text of a recipe-trained LM: every caption, every ``question answer`` and,
    for clips with captions, ``caption question answer`` (one caption of the clip picked at
    random, seeded). The last form teaches the LM to answer from a description that precedes
    the question, the skill the adapter's audio tokens then use."""
    rng = random.Random(seed)
    texts = [c for caps in captions for c in caps if c.strip()]
    for it in items:
        for a in it.answers:
            texts.append(f"{it.question} {a}")
            caps = [c for c in captions[it.clip] if c.strip() and c.strip() != a]
            if caps:
                texts.append(f"{rng.choice(caps)} {it.question} {a}")
    return texts


def score_rows(
    model: str,
    items: Sequence[QAItem],
    predictions: Sequence[str],
    train_items: Sequence[QAItem],
    extra: dict[str, Any] | None = None,
) -> list[dict]:
    """EM and F1 rows (×100) per task (first-appearance order) and over all items; ``chance``
    is the same metric of the task's most frequent training answer (item-weighted for
    ``all``)."""
    by_task: dict[str, list[int]] = {}
    for i, it in enumerate(items):
        by_task.setdefault(it.task, []).append(i)
    train_by_task: dict[str, list[QAItem]] = {}
    for it in train_items:
        train_by_task.setdefault(it.task, []).append(it)
    majority = {t: majority_answer(v) for t, v in train_by_task.items()}
    scores = {"EM": exact_match, "F1": token_f1}
    rows = []
    totals: dict[str, list[float]] = {m: [0.0, 0.0, 0.0] for m in scores}  # value, chance, n
    chance_known = True
    for task, idx in by_task.items():
        for metric, fn in scores.items():
            value = sum(fn(predictions[i], items[i].answers) for i in idx) / len(idx)
            guess = majority.get(task)
            chance = (
                None if guess is None else sum(fn(guess, items[i].answers) for i in idx) / len(idx)
            )
            chance_known &= chance is not None
            totals[metric][0] += value * len(idx)
            totals[metric][1] += (chance or 0.0) * len(idx)
            totals[metric][2] += len(idx)
            rows.append(_row(model, task, metric, value, chance, extra))
    if len(by_task) > 1:
        for metric, (v, c, n) in totals.items():
            rows.append(
                _row(model, ALL_TASKS, metric, v / n, c / n if chance_known else None, extra)
            )
    return rows


def _row(
    model: str, task: str, metric: str, value: float, chance: float | None, extra: dict | None
) -> dict:
    return {
        "model": model,
        "group": GROUP,
        "task": task,
        "metric": metric,
        "value": 100.0 * value,
        "chance": None if chance is None else 100.0 * chance,
        **(extra or {}),
    }


# ----------------------------------------------------------------------------- evaluator
@EVALUATORS.register("qa")
class QAEvaluator:
    """Audio QA through a frozen causal LM (see the module docstring and docs/evaluation_qa.md).

    Deterministic given ``seed`` (on one device). The LM is built once, on the first model's
    train split (the QA text is the same for every model), and reused for every model.
    """

    needs = frozenset({"frames"})

    def __init__(
        self,
        tokenizer: Any = None,
        lm: dict[str, Any] | None = None,
        templates_file: str | None = None,
        tasks: list[str] | None = None,
        describe: bool = True,
        stack: int = 4,
        adapter_dim: int = 256,
        max_audio_tokens: int = 64,
        train_lm: bool = False,
        lm_lr: float = 1e-4,
        steps: int = 600,
        batch_size: int = 32,
        lr: float = 1e-3,
        weight_decay: float = 0.01,
        warmup_steps: int = 50,
        grad_clip: float | None = 1.0,
        max_question_tokens: int = 32,
        max_answer_tokens: int = 32,
        eval_batch_size: int = 128,
        seed: int = 0,
        split: str = "test",
        dump_dir: str | None = None,
        device: Literal["auto", "cpu", "cuda"] = "auto",
    ) -> None:
        if min(stack, adapter_dim, max_audio_tokens, steps, batch_size, eval_batch_size) < 1:
            raise ConfigError(
                "qa: stack, adapter_dim, max_audio_tokens, steps, batch_size and "
                "eval_batch_size must be >= 1"
            )
        if min(max_question_tokens, max_answer_tokens) < 1:
            raise ConfigError("qa: max_question_tokens and max_answer_tokens must be >= 1")
        self.lm_cfg = dict(lm if lm is not None else DEFAULT_LM)
        LANGUAGE_MODELS.check(self.lm_cfg, "qa.lm", LM_CONTEXT_ARGS)
        self.templates: QATemplates = load_templates(templates_file)
        self.tokenizer = tokenizer
        self.tasks = None if tasks is None else list(tasks)
        self.describe = describe
        self.stack, self.adapter_dim, self.max_audio_tokens = stack, adapter_dim, max_audio_tokens
        self.train_lm, self.lm_lr = train_lm, lm_lr
        self.fit = FitSchedule(steps, batch_size, lr, weight_decay, warmup_steps, grad_clip, seed)
        self.max_question_tokens, self.max_answer_tokens = max_question_tokens, max_answer_tokens
        self.eval_batch_size, self.split = eval_batch_size, split
        self.dump_dir = dump_dir
        self.device = device
        self._lm: CausalLM | None = None
        self._items: dict[tuple[str, ...], list[QAItem]] = {}

    def items(self, es: EmbeddingSet) -> list[QAItem]:
        """The QA items of a split (cached by its clip ids: the same for every model)."""
        key = tuple(es.cut_ids)
        if key not in self._items:
            self._items[key] = build_qa_items(
                records_from_embeddings(es),
                self.templates,
                self.fit.seed,
                self.tasks,
                self.describe,
            )
        return self._items[key]

    def language_model(self, train: EmbeddingSet) -> CausalLM:
        """The LM, built on first use with the train split's captions and QA text."""
        if self._lm is None:
            texts = lm_texts(self.items(train), train.captions, self.fit.seed)
            with torch.random.fork_rng():
                self._lm = LANGUAGE_MODELS.build(
                    self.lm_cfg, "qa.lm", tokenizer=self.tokenizer, texts=texts
                )
            self._lm.requires_grad_(False)
            self._lm.eval()
        return self._lm

    def __call__(self, model: str, splits: Splits, text_fn: Any = None) -> list[dict]:
        train, test = splits["train"], splits[self.split]
        if train.extra.get("frames") is None or test.extra.get("frames") is None:
            log.info("qa: %s has no frame-level outputs; skipped", model)
            return []
        train_items, test_items = self.items(train), self.items(test)
        if not train_items or not test_items:
            log.warning(
                "qa: no QA items (train %d, test %d); skipped", len(train_items), len(test_items)
            )
            return []
        if self.dump_dir:
            for name, its in (("train", train_items), (self.split, test_items)):
                write_qa_jsonl(its, Path(self.dump_dir) / f"qa_{name}.jsonl")
        t0 = time.perf_counter()
        device = resolve_device(self.device)
        base_lm = self.language_model(train)
        t_lm = time.perf_counter() - t0
        lm = copy.deepcopy(base_lm) if self.train_lm else base_lm
        max_frames = self.stack * self.max_audio_tokens
        train_frames = [shorten_frames(f, max_frames) for f in train.extra["frames"]]
        test_frames = [shorten_frames(f, max_frames) for f in test.extra["frames"]]
        mq, ma = self.max_question_tokens, self.max_answer_tokens
        train_ex = encode_items(train_items, lm, mq, ma)
        test_ex = encode_items(test_items, lm, mq, ma)
        devices = [device.index or 0] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):  # leave the caller's RNG streams alone
            torch.manual_seed(self.fit.seed)
            adapter = FrameAdapter(
                int(train_frames[0].shape[1]), lm.hidden_size, self.stack, self.adapter_dim
            )
            losses = train_adapter(
                lm,
                adapter,
                train_frames,
                train_ex,
                self.fit,
                device,
                self.train_lm,
                self.lm_lr,
            )
        t_train = time.perf_counter() - t0 - t_lm
        # answers of one task have similar lengths: batching by task lets greedy search stop early
        order = sorted(range(len(test_items)), key=lambda i: (test_items[i].task, i))
        answers = answer_questions(
            lm,
            adapter,
            test_frames,
            [test_ex[i] for i in order],
            ma + 1,
            self.eval_batch_size,
            device,
        )
        preds = [""] * len(test_items)
        for i, a in zip(order, answers):
            preds[i] = a
        t_gen = time.perf_counter() - t0 - t_lm - t_train
        tail = losses[-max(1, len(losses) // 10) :]
        log.info(
            "qa[%s]: %d train / %d %s items, %d steps × %d on %s; answer loss %.3f → %.3f; "
            "LM %.1f s, train %.1f s, answer %.1f s",
            model,
            len(train_items),
            len(test_items),
            self.split,
            self.fit.steps,
            self.fit.batch_size,
            device,
            losses[0],
            sum(tail) / len(tail),
            t_lm,
            t_train,
            t_gen,
        )
        for i in range(min(3, len(test_items))):
            it = test_items[i]
            log.info(
                "qa [%s] %s: %r → %r (gold %r)",
                model,
                it.cut_id,
                it.question,
                preds[i],
                it.answers[0],
            )
        self.last_timing = {"lm": t_lm, "train": t_train, "answer": t_gen}
        self.last_predictions = preds
        return score_rows(
            model, test_items, preds, train_items, {"qa_templates": self.templates.tag}
        )
