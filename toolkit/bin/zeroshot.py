"""Zero-shot tagging of audio files: ``toolkit-zeroshot --model M --labels "dog,rain,speech" FILES|DIR``.

Every label is embedded through each prompt template (``{label}`` replaced; default: the five
templates of the ``zero_shot`` evaluator, or ``--template``/``--templates-file``, or a recipe's
prompt folder with ``--prompts-dir DIR --task TASK`` exactly as evaluation reads it), the
template embeddings are averaged, and each file gets the softmax over labels of the model's
scaled cosine similarity. Output: TSV ``path, top, prob, <one column per label>`` (header
first) or JSON lines (``--json``); the templates, their SHA-1 and the model id are logged and
written into every JSON record, so a reported figure can be reproduced exactly.
"""

from __future__ import annotations

import argparse
import logging

from toolkit.bin.common import run_cli
from toolkit.bin.use_common import add_model_args, run_over_files
from toolkit.config import ConfigError
from toolkit.evaluate.zero_shot import (
    DEFAULT_TEMPLATES,
    load_prompt_file,
    prompts_hash,
    task_prompts,
)
from toolkit.utils.logging import setup_logging

log = logging.getLogger("toolkit.zeroshot")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_args(p)
    p.add_argument("--labels", help="comma-separated labels")
    p.add_argument("--labels-file", help="one label per line")
    p.add_argument("--template", help="one prompt template with {label}")
    p.add_argument("--templates-file", help="a *.prompts.txt file (one template per line)")
    p.add_argument("--prompts-dir", help="a recipe's prompt folder (with --task)")
    p.add_argument("--task", default="", help="task name for --prompts-dir (<task>.prompts.txt)")
    p.add_argument("inputs", nargs="+", metavar="FILES|DIR")
    args = p.parse_args(argv)
    setup_logging(None)
    from toolkit.api import load

    if bool(args.labels) == bool(args.labels_file):
        raise ConfigError("give --labels a,b,c or --labels-file FILE (one of them)")
    if args.labels:
        labels = [x.strip() for x in args.labels.split(",") if x.strip()]
    else:
        with open(args.labels_file, encoding="utf-8") as f:
            labels = [x.strip() for x in f if x.strip()]
    names = {lab: lab for lab in labels}
    templates = list(DEFAULT_TEMPLATES)
    if sum(x is not None for x in (args.template, args.templates_file, args.prompts_dir)) > 1:
        raise ConfigError("give at most one of --template, --templates-file, --prompts-dir")
    if args.template is not None:
        templates = [args.template]
    elif args.templates_file:
        templates = load_prompt_file(args.templates_file)
    elif args.prompts_dir:
        prompts = task_prompts(args.task, args.prompts_dir)
        templates = prompts.templates
        names = {lab: prompts.name_of(lab) for lab in labels}
    model = load(args.model, device=args.device)
    log.info(
        "prompts %s (templates %s, class names %s); model %s",
        prompts_hash(templates, names),
        templates,
        names,
        model.model_id,
    )

    def results(paths: list[str], audio: list) -> list[dict]:
        res = model.zero_shot(
            audio, labels, templates=templates, sampling_rate=model.sampling_rate,
            class_names=names,
        )  # fmt: skip
        out = []
        for i, path in enumerate(paths):
            probs = [float(v) for v in res.probs[i]]
            top = max(range(len(labels)), key=lambda j: (probs[j], -j))
            rec = {"path": path, "top": labels[top], "prob": probs[top], **dict(zip(labels, probs))}
            if args.json:
                rec.update(prompts_hash=res.prompts_hash, model_id=model.model_id)
            out.append(rec)
        return out

    return run_over_files(args, model, ["path", "top", "prob", *labels], results)


def cli() -> None:
    run_cli(main)


if __name__ == "__main__":
    cli()
