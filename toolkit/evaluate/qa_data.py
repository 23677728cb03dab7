"""QA sets built from manifests' labels and captions with question templates (versioned data).

A clip's labels (``<domain>_<attribute>`` keys of the cut contract) become questions whose
answer is the label (``music_instrument`` → "What instrument is playing?" → "piano"); its
captions become captioning-style items ("Describe the audio." → any reference caption; "Describe
the speaker's style." → its ``speaking_style`` captions). The templates live in a YAML file
(:data:`DEFAULT_TEMPLATES`, format in that file and docs/evaluation_qa.md). Everything is a
deterministic function of the seed and the cut id: the same clip gets the same phrasing in every
run and whatever else the split holds.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from toolkit.config import ConfigError

DEFAULT_TEMPLATES = Path(__file__).with_name("qa_templates.yaml")
DOMAINS = ("speech", "music", "sound", "mix")


@dataclass(frozen=True)
class QAItem:
    """One question about one clip; ``answers`` are all accepted answers (the first is the
    canonical one for label tasks)."""

    clip: int  # row of the clip in its split (EmbeddingSet / record list)
    cut_id: str
    task: str  # label task, or the task name of a describe template
    question: str
    answers: tuple[str, ...]


@dataclass(frozen=True)
class ClipRecord:
    """What the QA builder reads of a clip: labels, captions and (when known) their styles."""

    cut_id: str
    labels: Mapping[str, Any]
    captions: Sequence[str]
    caption_styles: Sequence[str] | None = None


@dataclass(frozen=True)
class DescribeTemplate:
    task: str
    questions: tuple[str, ...]
    styles: tuple[str, ...] | None = None
    exclude_styles: tuple[str, ...] = ()


@dataclass
class QATemplates:
    """Parsed template table (see ``qa_templates.yaml``)."""

    version: str
    tasks: dict[str, tuple[tuple[str, ...], str]]  # task -> (questions, answer format)
    fallback: str | None
    fallback_multi: str | None
    skip: frozenset[str] = frozenset()
    describe: tuple[DescribeTemplate, ...] = ()
    digest: str = ""  # sha1 of the source file's bytes (first 8 hex digits)
    source: str = ""

    @property
    def tag(self) -> str:
        """``<version>:<digest>``: recorded on result rows so scores are compared like for
        like."""
        return f"{self.version}:{self.digest}"


def _str_list(value: Any, where: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(q, str) for q in items):
        raise ConfigError(f"{where}: a question or a non-empty list of questions, got {value!r}")
    return tuple(q.strip() for q in items)


def parse_templates(
    data: Mapping[str, Any], source: str = "<dict>", digest: str = ""
) -> QATemplates:
    """Validate a template table (the YAML document as a mapping)."""
    known = {"version", "tasks", "skip", "fallback", "fallback_multi", "describe"}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: a QA template file is a mapping, got {type(data).__name__}")
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{source}: unknown keys {unknown}; known: {', '.join(sorted(known))}")
    if "version" not in data:
        raise ConfigError(f"{source}: 'version' is required (templates are versioned data)")
    tasks: dict[str, tuple[tuple[str, ...], str]] = {}
    for task, spec in (data.get("tasks") or {}).items():
        where = f"{source}: tasks.{task}"
        if isinstance(spec, Mapping):
            bad = sorted(set(spec) - {"questions", "answer"})
            if bad or "questions" not in spec:
                raise ConfigError(f"{where}: keys are 'questions' and optional 'answer'")
            answer = str(spec.get("answer", "{label}"))
            if "{label}" not in answer:
                raise ConfigError(f"{where}.answer: must contain '{{label}}', got {answer!r}")
            tasks[str(task)] = (_str_list(spec["questions"], where), answer)
        else:
            tasks[str(task)] = (_str_list(spec, where), "{label}")
    describe = []
    for i, d in enumerate(data.get("describe") or []):
        where = f"{source}: describe[{i}]"
        if not isinstance(d, Mapping) or "task" not in d or "questions" not in d:
            raise ConfigError(f"{where}: needs 'task' and 'questions'")
        bad = sorted(set(d) - {"task", "questions", "styles", "exclude_styles"})
        if bad:
            raise ConfigError(f"{where}: unknown keys {bad}")
        styles = d.get("styles")
        describe.append(
            DescribeTemplate(
                task=str(d["task"]),
                questions=_str_list(d["questions"], where),
                styles=None if styles is None else tuple(str(s) for s in styles),
                exclude_styles=tuple(str(s) for s in d.get("exclude_styles") or ()),
            )
        )
    for key in ("fallback", "fallback_multi"):
        text = data.get(key)
        if text is not None and not isinstance(text, str):
            raise ConfigError(f"{source}: {key}: a string or null, got {text!r}")
    return QATemplates(
        version=str(data["version"]),
        tasks=tasks,
        fallback=data.get("fallback"),
        fallback_multi=data.get("fallback_multi", data.get("fallback")),
        skip=frozenset(str(s) for s in data.get("skip") or ()),
        describe=tuple(describe),
        digest=digest,
        source=source,
    )


def load_templates(path: str | Path | None = None) -> QATemplates:
    """Templates from a YAML file (default: the shipped :data:`DEFAULT_TEMPLATES`)."""
    p = Path(path) if path is not None else DEFAULT_TEMPLATES
    if not p.is_file():
        raise ConfigError(f"qa.templates_file: {p} not found")
    raw = p.read_bytes()
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as e:
        raise ConfigError(f"qa.templates_file: {p} is not valid YAML: {e}") from e
    return parse_templates(data, str(p), hashlib.sha1(raw).hexdigest()[:8])


def label_answer(value: Any) -> str | None:
    """A label (str, or list for a multi-label task) as answer text; None when there is none."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        parts = [str(v).replace("_", " ").strip() for v in value if v is not None]
        parts = [p for p in parts if p]
        return ", ".join(parts) if parts else None
    text = str(value).replace("_", " ").strip()
    return text or None


def task_questions(task: str, templates: QATemplates, multi: bool) -> tuple[tuple[str, ...], str]:
    """(questions, answer format) of a label task: its template, else the fallback, else ``()``."""
    if task in templates.skip:
        return (), "{label}"
    if task in templates.tasks:
        return templates.tasks[task]
    domain, _, attribute = task.partition("_")
    fmt = templates.fallback_multi if multi else templates.fallback
    if not fmt or not attribute:
        return (), "{label}"
    where = {"mix": "audio"}.get(domain, domain)
    return (fmt.format(attribute=attribute.replace("_", " "), domain=where),), "{label}"


def _rng(seed: int, cut_id: str, what: str) -> random.Random:
    return random.Random(f"{seed}\x00{cut_id}\x00{what}")  # str seeds hash with SHA-512: stable


def build_qa_items(
    records: Sequence[ClipRecord],
    templates: QATemplates | None = None,
    seed: int = 0,
    tasks: Iterable[str] | None = None,
    describe: bool = True,
) -> list[QAItem]:
    """QA items of every clip: one per label task the clip has (skipped tasks and tasks without
    a template or fallback left out; ``tasks`` restricts to those named) and one per describe
    template with a qualifying caption (``describe``). Items follow the clip order, label tasks
    in sorted order, then the describe templates in file order.
    """
    templates = templates or load_templates()
    wanted = None if tasks is None else set(tasks)
    items: list[QAItem] = []
    for i, rec in enumerate(records):
        for task in sorted(rec.labels):
            if wanted is not None and task not in wanted:
                continue
            value = rec.labels[task]
            answer = label_answer(value)
            if answer is None:
                continue
            questions, fmt = task_questions(task, templates, isinstance(value, (list, tuple)))
            if not questions:
                continue
            q = _rng(seed, rec.cut_id, task).choice(questions)
            items.append(QAItem(i, rec.cut_id, task, q, (fmt.format(label=answer),)))
        if not describe:
            continue
        for d in templates.describe:
            if wanted is not None and d.task not in wanted:
                continue
            answers = describe_answers(rec, d)
            if answers:
                q = _rng(seed, rec.cut_id, d.task).choice(d.questions)
                items.append(QAItem(i, rec.cut_id, d.task, q, answers))
    return items


def describe_answers(rec: ClipRecord, d: DescribeTemplate) -> tuple[str, ...]:
    """The captions of ``rec`` that answer a describe template (in caption order)."""
    caps = [c.strip() for c in rec.captions]
    styles = list(rec.caption_styles) if rec.caption_styles is not None else None
    if styles is not None and len(styles) != len(caps):
        styles = None  # not parallel to the captions: treat as unknown
    if d.styles is not None:
        if styles is None:
            return ()
        return tuple(c for c, s in zip(caps, styles) if c and s in d.styles)
    if styles is None:
        return tuple(c for c in caps if c)
    return tuple(c for c, s in zip(caps, styles) if c and s not in d.exclude_styles)


def records_from_cuts(cuts: Iterable[Any]) -> list[ClipRecord]:
    """Clip records of a lhotse CutSet (labels, captions and caption styles of the cut
    contract, :mod:`toolkit.data.cuts`)."""
    out = []
    for cut in cuts:
        custom = (cut.supervisions[0].custom or {}) if cut.supervisions else {}
        labels = {k: v for k, v in custom.items() if k.split("_", 1)[0] in DOMAINS and "_" in k}
        out.append(
            ClipRecord(
                cut.id,
                labels,
                list(custom.get("caption") or []),
                custom.get("caption_style"),
            )
        )
    return out


def records_from_embeddings(es: Any) -> list[ClipRecord]:
    """Clip records of an :class:`~toolkit.evaluate.embeddings.EmbeddingSet`; caption styles
    come from ``extra["caption_styles"]`` when the extraction kept them (else unknown)."""
    styles = es.extra.get("caption_styles")
    return [
        ClipRecord(
            cid,
            {t: vals[i] for t, vals in es.labels.items() if vals[i] is not None},
            list(es.captions[i]),
            None if styles is None else styles[i],
        )
        for i, cid in enumerate(es.cut_ids)
    ]


def write_qa_jsonl(items: Sequence[QAItem], path: str | Path) -> None:
    """One JSON object per item (``clip, cut_id, task, question, answers``)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "w", encoding="utf-8") as f:
        for it in items:
            f.write(json.dumps({**asdict(it), "answers": list(it.answers)}) + "\n")
