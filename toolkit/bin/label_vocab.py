"""Write the label vocabulary of the ``tagging`` objective from cut manifests.

``python -m toolkit.bin.label_vocab data/cuts_train.jsonl.gz [more.jsonl.gz] --tasks a,b -o data/labels.txt``

One ``task<TAB>label`` line per label, tasks in ``--tasks`` order (default: every label task
present, sorted), labels sorted within a task. ``--separator ';'`` splits multi-label strings.
"""

from __future__ import annotations

import argparse
import logging
from collections import Counter
from collections.abc import Iterable

from lhotse import CutSet
from lhotse.cut import Cut

from toolkit.bin.common import run_cli
from toolkit.config import ConfigError
from toolkit.data.cuts import cut_labels, label_tasks
from toolkit.objectives.tagging import split_labels, write_label_vocab
from toolkit.utils.logging import setup_logging

log = logging.getLogger("toolkit.label_vocab")


def count_labels(
    cuts: Iterable[Cut], tasks: list[str] | None = None, separator: str | None = None
) -> dict[str, Counter]:
    """``{task: Counter(label → clips)}`` over ``cuts`` (``tasks=None``: every label task)."""
    counts: dict[str, Counter] = {t: Counter() for t in tasks or []}
    for cut in cuts:
        for task, value in cut_labels(cut).items():
            if tasks is not None and task not in counts:
                continue
            counts.setdefault(task, Counter()).update(split_labels(value, separator))
    return counts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("cuts", nargs="+", help="cut manifests (jsonl.gz)")
    p.add_argument("-o", "--out", required=True, help="vocabulary file to write")
    p.add_argument("--tasks", default=None, help="comma-separated tasks (default: all present)")
    p.add_argument("--separator", default=None, help="split string labels on this (multi-label)")
    p.add_argument("--min-count", type=int, default=1, help="drop labels seen in fewer clips")
    args = p.parse_args(argv)
    setup_logging()
    manifests = [CutSet.from_file(path) for path in args.cuts]
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks else None
    if tasks is None:
        tasks = sorted({t for cs in manifests for t in label_tasks(cs)})
        if not tasks:
            raise ConfigError(f"no label tasks in {', '.join(args.cuts)}")
    counts: dict[str, Counter] = {t: Counter() for t in tasks}
    for cs in manifests:
        for task, c in count_labels(cs, tasks, args.separator).items():
            counts[task].update(c)
    vocab = {t: sorted(lab for lab, n in counts[t].items() if n >= args.min_count) for t in tasks}
    empty = [t for t, labels in vocab.items() if not labels]
    if empty:
        raise ConfigError(
            f"--tasks: no labels for {', '.join(empty)} in {', '.join(args.cuts)}; "
            f"present: {', '.join(sorted({t for cs in manifests for t in label_tasks(cs)}))}"
        )
    write_label_vocab(vocab, args.out)
    for t, labels in vocab.items():
        log.info("%s: %d labels, %d label occurrences", t, len(labels), sum(counts[t].values()))
    log.info("label vocabulary written to %s", args.out)
    return 0


def cli() -> None:
    run_cli(main)


if __name__ == "__main__":
    cli()
