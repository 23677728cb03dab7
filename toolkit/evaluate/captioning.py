"""Captioning evaluators: the model's own decoder, and a fresh decoder probing frozen frames.

``captioning`` scores the captions the pretrained model's objective generated for the test clips
(``extra["generated"]``, made during extraction). ``caption_probe`` is language-involved probing:
a new text decoder is trained on the train split's cached frame-level encoder outputs
(``extra["frames"]``; the encoder stays frozen, it is never run again) and then captions the test
clips. Both score with :func:`toolkit.evaluate.captioning_metrics.score_captions` against every
reference caption of each clip and also report a text-only reference, the model
``most_frequent_caption`` (every test clip gets the training split's most frequent caption).

Scores are reported ×100 (BLEU/METEOR/ROUGE-L/SPICE in 0–100, CIDEr-D in 0–1000); a metric that
cannot be computed here (e.g. SPICE without its CoreNLP jars) is a row with value None ("-").
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal

import torch
from torch import Tensor, nn

from toolkit.config import ConfigError
from toolkit.decoders.generation import generate_text
from toolkit.evaluate.captioning_metrics import METRICS, score_captions
from toolkit.evaluate.embeddings import EmbeddingSet
from toolkit.evaluate.heads.fit import FitSchedule, fit_on_batches
from toolkit.layers import resolve_device
from toolkit.objectives.captioning import smoothed_token_ce
from toolkit.registry import DECODERS, EVALUATORS
from toolkit.text.tokenizer import pad_ids

log = logging.getLogger(__name__)
Splits = dict[str, EmbeddingSet]

DEFAULT_METRICS = ("CIDEr-D", "SPIDEr", "BLEU_4", "METEOR", "ROUGE_L")
BASELINE_MODEL = "most_frequent_caption"
OWN_GROUP = "captioning (own decoder)"
PROBE_GROUP = "captioning (probe decoder)"
DEFAULT_PROBE_DECODER = {
    "name": "transformer",
    "dim": 128,
    "num_layers": 2,
    "num_heads": 4,
    "ff_dim": 512,
    "dropout": 0.1,
}
_PUNCT = re.compile(r"[^\w\s]")
_logged: set[tuple[str, str]] = set()


# ----------------------------------------------------------------------------- text baseline
def normalise_caption(text: str) -> str:
    """Lower-case, punctuation removed, whitespace collapsed (for counting captions only)."""
    return " ".join(_PUNCT.sub(" ", text.lower()).split())


def most_frequent_caption(captions: Iterable[str]) -> str:
    """The most frequent caption after :func:`normalise_caption`, in its most frequent original
    spelling. Ties go to the caption seen first; empty captions are ignored."""
    groups: dict[str, Counter[str]] = {}
    for c in captions:
        key = normalise_caption(c)
        if key:
            groups.setdefault(key, Counter())[c] += 1
    if not groups:
        raise ValueError("no non-empty caption to pick the most frequent one from")
    key = max(groups, key=lambda k: groups[k].total())  # max keeps the first of equals
    return groups[key].most_common(1)[0][0]  # most_common keeps first-seen order on ties


# ----------------------------------------------------------------------------- scoring
@contextlib.contextmanager
def _own_unavailable_logging() -> Iterator[None]:
    """While scoring, the metric module's per-call "X unavailable" warnings are dropped: this
    module logs each reason once per process instead."""
    target = logging.getLogger("toolkit.evaluate.captioning_metrics")

    def keep(record: logging.LogRecord) -> bool:
        return record.msg != "%s unavailable: %s"

    target.addFilter(keep)
    try:
        yield
    finally:
        target.removeFilter(keep)


def caption_rows(
    model: str,
    group: str,
    predictions: Mapping[str, str],
    references: Mapping[str, Sequence[str]],
    metrics: Sequence[str] = DEFAULT_METRICS,
    spice_models: str | None = None,
    task: str = "test captions",
) -> list[dict]:
    """Score ``predictions`` (``{clip: caption}``) against ``references`` (``{clip: [captions]}``)
    and return one report row per metric, value ×100 or None when unavailable (reason logged
    once)."""
    with _own_unavailable_logging():
        res = score_captions(predictions, references, metrics, spice_models=spice_models)
    rows = []
    for m in metrics:
        value = res.get(m)
        if value is None:
            reason = res["unavailable"].get(m, "not computed")
            if (m, reason) not in _logged:
                _logged.add((m, reason))
                log.warning("captioning metric %s unavailable (shown as '-'): %s", m, reason)
        rows.append(
            {
                "model": model,
                "group": group,
                "task": task,
                "metric": m,
                "value": None if value is None else 100.0 * float(value),
                "chance": None,
            }
        )
    return rows


def _references(es: EmbeddingSet) -> dict[str, list[str]]:
    """``{cut id: its captions}`` for every clip that has at least one caption."""
    return {i: list(c) for i, c in zip(es.cut_ids, es.captions) if c}


def _check_metrics(metrics: Sequence[str], key: str) -> list[str]:
    out = list(metrics)
    bad = [m for m in out if m not in METRICS]
    if bad or not out:
        raise ConfigError(f"{key}.metrics: unknown or empty {bad}; known: {', '.join(METRICS)}")
    return out


class _CaptionEvaluator:
    """Shared parts: generation options, metrics, the most-frequent-caption baseline rows."""

    needs: frozenset[str] = frozenset()
    group = ""
    key = ""  # the evaluator's registered name (error messages)

    def __init__(
        self,
        method: Literal["beam", "greedy"] = "beam",
        beam_size: int = 4,
        max_len: int = 30,
        length_penalty: float = 1.0,
        metrics: Sequence[str] = DEFAULT_METRICS,
        spice_models: str | None = None,
        baseline: bool = True,
        split: str = "test",
    ) -> None:
        key = self.key
        if method not in ("beam", "greedy"):
            raise ConfigError(f"{key}.method: 'beam' or 'greedy', got {method!r}")
        if beam_size < 1 or max_len < 1:
            raise ConfigError(f"{key}: beam_size and max_len must be >= 1")
        self.method, self.beam_size, self.max_len = method, beam_size, max_len
        self.length_penalty = length_penalty
        self.metrics = _check_metrics(metrics, key)
        self.spice_models = spice_models
        self.baseline = baseline
        self.split = split
        self._baseline_data: tuple[list[str], dict[str, list[str]]] | None = None
        self._scored_any = False

    @property
    def generation(self) -> dict[str, Any]:
        """Options for :func:`toolkit.decoders.generation.generate_text`: ``method`` + kwargs."""
        opts: dict[str, Any] = {"method": self.method, "max_len": self.max_len}
        if self.method == "beam":
            opts.update(beam_size=self.beam_size, length_penalty=self.length_penalty)
        return opts

    def _remember_baseline_data(self, splits: Splits) -> None:
        if self._baseline_data is None:
            train_caps = [c for cs in splits["train"].captions for c in cs]
            self._baseline_data = (train_caps, _references(splits[self.split]))

    def _score(self, model: str, preds: Sequence[str], es: EmbeddingSet) -> list[dict]:
        refs = _references(es)
        if not refs:
            log.warning("%s: no %s clip has a caption; nothing to score", self.group, self.split)
            return []
        if len(refs) < len(es.cut_ids):
            log.warning(
                "%s: %d %s clips without captions are not scored",
                self.group,
                len(es.cut_ids) - len(refs),
                self.split,
            )
        by_id = dict(zip(es.cut_ids, preds))
        self._scored_any = True
        for i in list(refs)[:3]:
            log.info("%s [%s] %s: %r (reference: %r)", self.group, model, i, by_id[i], refs[i][0])
        return caption_rows(
            model,
            self.group,
            {i: by_id[i] for i in refs},
            refs,
            self.metrics,
            self.spice_models,
            f"{self.split} captions",
        )

    def finish(self) -> list[dict]:
        """Rows of the ``most_frequent_caption`` reference (once, after every model), if any
        model was scored."""
        if not (self.baseline and self._scored_any and self._baseline_data):
            return []
        train_caps, refs = self._baseline_data
        self._baseline_data = None
        if not train_caps or not refs:
            return []
        caption = most_frequent_caption(train_caps)
        log.info("%s: most frequent training caption: %r", self.group, caption)
        return caption_rows(
            BASELINE_MODEL,
            self.group,
            dict.fromkeys(refs, caption),
            refs,
            self.metrics,
            self.spice_models,
            f"{self.split} captions",
        )


# ----------------------------------------------------------------------------- own decoder
@EVALUATORS.register("captioning")
class OwnDecoderCaptioning(_CaptionEvaluator):
    """Scores the captions the model's own objective generated for the ``split`` clips (beam
    search during extraction, with the generation options of the base class); models without a
    ``generate`` give no rows."""

    needs = frozenset({"generated"})
    group = OWN_GROUP
    key = "captioning"

    def __call__(self, model: str, splits: Splits, text_fn: Any = None) -> list[dict]:
        es = splits[self.split]
        self._remember_baseline_data(splits)
        generated = es.extra.get("generated")
        if generated is None:
            log.info("captioning: %s has no caption decoder; no own-decoder rows", model)
            return []
        return self._score(model, generated, es)


# ----------------------------------------------------------------------------- probe decoder
def pad_frames(
    frames: Sequence[Tensor], device: torch.device | str = "cpu"
) -> tuple[Tensor, Tensor]:
    """Per-clip ``(T_i, D)`` tensors → float32 ``(B, max T_i, D)`` (zero padded) and ``(B,)``."""
    lens = torch.tensor([f.shape[0] for f in frames], dtype=torch.long)
    out = torch.zeros(len(frames), max(1, int(lens.max())), frames[0].shape[1])
    for i, f in enumerate(frames):
        out[i, : f.shape[0]] = f
    return out.to(device), lens.to(device)


def caption_examples(
    captions: Sequence[Sequence[str]], tokenizer: Any, max_tokens: int
) -> list[tuple[int, list[int]]]:
    """``(clip index, [BOS, ..., EOS] ids)`` for every caption of every clip; ids are cut to
    ``max_tokens + 1`` so that the decoder reads at most ``max_tokens`` positions."""
    return [
        (i, tokenizer.encode(c)[: max_tokens + 1])
        for i, caps in enumerate(captions)
        for c in caps
        if c.strip()
    ]


def _batch_loss(
    decoder: nn.Module,
    frames: Sequence[Tensor],
    examples: Sequence[tuple[int, list[int]]],
    label_smoothing: float,
    pad_id: int,
    device: torch.device,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Teacher-forced token losses of a batch of examples (see ``smoothed_token_ce``)."""
    enc, lens = pad_frames([frames[i] for i, _ in examples], device)
    tokens = pad_ids([ids for _, ids in examples], pad_id)[0].to(device)
    logits = decoder(tokens[:, :-1], enc, lens)
    return smoothed_token_ce(logits.flatten(0, 1), tokens[:, 1:].flatten(), label_smoothing, pad_id)


def train_probe_decoder(
    decoder: nn.Module,
    frames: Sequence[Tensor],
    examples: Sequence[tuple[int, list[int]]],
    fit: FitSchedule,
    label_smoothing: float = 0.1,
    pad_id: int = 0,
    device: torch.device | str = "cpu",
) -> list[float]:
    """Train ``decoder`` on ``(frames[clip] (T, D), caption ids)`` examples with AdamW (decay on
    matrices only), linear warm-up then cosine decay to 1 % of ``fit.lr``, label-smoothed token
    CE.

    Batches of ``fit.batch_size`` examples follow a fresh seeded permutation every epoch.
    Returns the training loss of every step.
    """
    if not examples:
        raise ValueError("no training captions for the probe decoder")
    device = torch.device(device)
    decoder.to(device).train()

    def mean_loss(batch: list[tuple[int, list[int]]]) -> Tensor:
        loss, _, _, count = _batch_loss(decoder, frames, batch, label_smoothing, pad_id, device)
        return loss / count.clamp(min=1)

    return fit_on_batches(decoder, examples, mean_loss, fit)


@torch.no_grad()
def probe_dev_loss(
    decoder: nn.Module,
    frames: Sequence[Tensor],
    examples: Sequence[tuple[int, list[int]]],
    batch_size: int = 64,
    pad_id: int = 0,
    device: torch.device | str = "cpu",
) -> tuple[float, float]:
    """Mean unsmoothed token NLL and argmax token accuracy of ``examples`` (eval mode)."""
    was = decoder.training
    decoder.eval()
    nll = correct = count = 0.0
    for s in range(0, len(examples), batch_size):
        out = _batch_loss(
            decoder, frames, examples[s : s + batch_size], 0.0, pad_id, torch.device(device)
        )
        nll, correct, count = nll + float(out[1]), correct + float(out[2]), count + float(out[3])
    decoder.train(was)
    return nll / max(count, 1.0), correct / max(count, 1.0)


def generate_from_frames(
    decoder: nn.Module,
    frames: Sequence[Tensor],
    tokenizer: Any,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    **generation: Any,
) -> list[str]:
    """One caption per clip of ``frames`` (``(T_i, D)`` each), batches of ``batch_size`` clips;
    ``generation``: ``method`` and the options of :func:`generate_text`."""
    out: list[str] = []
    for s in range(0, len(frames), batch_size):
        enc, lens = pad_frames(frames[s : s + batch_size], device)
        out += generate_text(decoder, enc, lens, tokenizer, **generation)
    return out


@EVALUATORS.register("caption_probe")
class CaptionProbe(_CaptionEvaluator):
    """Language-involved probing: a fresh ``decoder`` (a :data:`~toolkit.registry.DECODERS`
    block; ``encoder_dim`` = frame dim, ``vocab_size`` = the run's tokenizer) trained for ``steps``
    on the train split's cached frames and every one of their captions, then beam search on the
    ``split`` clips, scored like ``captioning``. Deterministic given ``seed`` (on one device).
    The dev split's token loss/accuracy is logged for information."""

    needs = frozenset({"frames"})
    group = PROBE_GROUP
    key = "caption_probe"

    def __init__(
        self,
        tokenizer: Any = None,
        decoder: dict[str, Any] | None = None,
        steps: int = 1000,
        batch_size: int = 32,
        lr: float = 5e-4,
        weight_decay: float = 0.01,
        warmup_steps: int = 100,
        label_smoothing: float = 0.1,
        grad_clip: float | None = 1.0,
        seed: int = 0,
        method: Literal["beam", "greedy"] = "beam",
        beam_size: int = 4,
        max_len: int = 30,
        length_penalty: float = 1.0,
        eval_batch_size: int = 64,
        metrics: Sequence[str] = DEFAULT_METRICS,
        spice_models: str | None = None,
        baseline: bool = True,
        split: str = "test",
        device: Literal["auto", "cpu", "cuda"] = "auto",
    ) -> None:
        super().__init__(
            method, beam_size, max_len, length_penalty, metrics, spice_models, baseline, split
        )
        if tokenizer is None or getattr(tokenizer, "vocab_size", None) is None:
            raise ConfigError("caption_probe: needs the run's tokenizer (a tokenizer section)")
        if steps < 1 or batch_size < 1 or eval_batch_size < 1:
            raise ConfigError("caption_probe: steps, batch_size and eval_batch_size must be >= 1")
        if not 0.0 <= label_smoothing < 1.0:
            raise ConfigError(f"caption_probe.label_smoothing: in [0, 1), got {label_smoothing}")
        self.decoder_cfg = dict(decoder if decoder is not None else DEFAULT_PROBE_DECODER)
        DECODERS.check(self.decoder_cfg, "caption_probe.decoder", ("vocab_size", "encoder_dim"))
        self.tokenizer = tokenizer
        self.fit = FitSchedule(steps, batch_size, lr, weight_decay, warmup_steps, grad_clip, seed)
        self.label_smoothing = label_smoothing
        self.eval_batch_size = eval_batch_size
        self.device = device

    def _examples(self, es: EmbeddingSet, max_tokens: int) -> list[tuple[int, list[int]]]:
        return caption_examples(es.captions, self.tokenizer, max_tokens)

    def __call__(self, model: str, splits: Splits, text_fn: Any = None) -> list[dict]:
        self._remember_baseline_data(splits)
        frames = splits["train"].extra.get("frames")
        test = splits[self.split]
        if frames is None or test.extra.get("frames") is None:
            log.info("caption_probe: %s has no frame-level outputs; skipped", model)
            return []
        t0 = time.perf_counter()
        device = resolve_device(self.device)
        pad_id = getattr(self.tokenizer, "pad_id", 0)
        devices = [device.index or 0] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):  # leave the caller's RNG streams alone
            torch.manual_seed(self.fit.seed)
            decoder = DECODERS.build(
                self.decoder_cfg,
                "caption_probe.decoder",
                vocab_size=self.tokenizer.vocab_size,
                encoder_dim=int(frames[0].shape[1]),
            )
            limit = int(getattr(decoder, "max_len", 10**9))
            examples = self._examples(splits["train"], limit)
            if not examples:
                log.warning("caption_probe: the train split has no captions; skipped")
                return []
            losses = train_probe_decoder(
                decoder, frames, examples, self.fit, self.label_smoothing, pad_id, device
            )
        t_train = time.perf_counter() - t0
        tail = losses[-max(1, len(losses) // 10) :]
        msg = f"train loss {losses[0]:.3f} → {sum(tail) / len(tail):.3f}"
        dev = splits.get("dev")
        if dev is not None and dev.extra.get("frames") is not None:
            dev_ex = self._examples(dev, limit)
            if dev_ex:
                nll, acc = probe_dev_loss(
                    decoder, dev.extra["frames"], dev_ex, self.eval_batch_size, pad_id, device
                )
                msg += (
                    f"; dev token NLL {nll:.3f} (ppl {math.exp(min(nll, 50)):.1f}, acc {acc:.1%})"
                )
        preds = generate_from_frames(
            decoder,
            test.extra["frames"],
            self.tokenizer,
            self.eval_batch_size,
            device,
            **self.generation,
        )
        t_gen = time.perf_counter() - t0 - t_train
        log.info(
            "caption_probe[%s]: %d examples, %d steps × %d on %s; %s; train %.1f s, generate %.1f s",
            model,
            len(examples),
            self.fit.steps,
            self.fit.batch_size,
            device,
            msg,
            t_train,
            t_gen,
        )
        return self._score(model, preds, test)
