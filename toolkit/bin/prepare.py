"""Prepare corpora from local copies into Lhotse cut manifests.

One subcommand per registered corpus (``toolkit/data/prepare/<name>.py``), its options built from
the ``prepare_<name>`` signature, plus ``--num-jobs``, ``--force`` and ``--part-size`` (the
``PrepareRun`` keywords that every corpus takes)::

    python -m toolkit.bin.prepare list
    python -m toolkit.bin.prepare audiocaps --corpus-dir /data/audiocaps --output-dir data/manifests --num-jobs 8
    python -m toolkit.bin.prepare all --corpora conf/corpora.yaml --output-dir data/manifests

``all`` reads a YAML whose sections (default ``corpora``; the CaptionStew recipe uses ``sources``
for the caption corpora and ``downstream`` for the evaluation corpora) map
``<name>: {corpus_dir: <path or null>, <option>: <value>}`` and prepares every corpus with a path;
a corpus without one (or whose folder is absent) is skipped with a message. Relative paths are
taken from the YAML's folder. ``names`` prints the corpora of a section that have a manifest in
``--output-dir``. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import inspect
import logging
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from toolkit.bin.common import run_cli
from toolkit.config import ConfigError
from toolkit.data.prepare.common import (
    PrepareRun,
    manifest_path,
    option_names,
    run_defaults,
    takes_run,
)
from toolkit.registry import CORPORA
from toolkit.utils.logging import setup_logging

log = logging.getLogger("toolkit.prepare")


def load_corpus_modules() -> dict[str, Any]:
    """``{name: prepare function}`` of every registered corpus (the ``corpus`` registry imports
    every module of ``toolkit.data.prepare`` on first use)."""
    return dict(CORPORA.items())


def _scalar_type(ann: Any) -> Any:
    origin = typing.get_origin(ann)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(ann) if a is not type(None)]
        return _scalar_type(args[0]) if args else str
    return ann


def _add_param(p: argparse.ArgumentParser, name: str, ann: Any, default: Any) -> None:
    """``--<name>`` of type ``ann`` (``inspect.Parameter.empty`` default: required)."""
    ann = _scalar_type(ann)
    flag = "--" + name.replace("_", "-")
    required = default is inspect.Parameter.empty
    default = None if required else default
    help_ = f"default: {default!r}" if not required else "required"
    origin = typing.get_origin(ann)
    if ann is bool:
        p.add_argument(flag, type=_parse_bool, default=default, metavar="true|false", help=help_)
    elif origin in (list, tuple) or ann in (list, tuple):
        item = (typing.get_args(ann) or (str,))[0]
        conv = Path if item is Path else item
        p.add_argument(
            flag, type=lambda s, c=conv: [c(x) for x in s.split(",") if x], default=default,
            required=required, metavar="A,B,...", help=help_,
        )  # fmt: skip
    else:
        conv = ann if ann in (int, float, str, Path) else str
        p.add_argument(flag, type=conv, default=default, required=required, help=help_)


def _parse_bool(s: str) -> bool:
    if s.lower() in ("1", "true", "yes"):
        return True
    if s.lower() in ("0", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {s!r}")


def build_parser() -> argparse.ArgumentParser:
    corpora = load_corpus_modules()
    p = argparse.ArgumentParser(prog="toolkit.bin.prepare", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="corpus", required=True)
    sub.add_parser("list", help="list the known corpora")
    pa = sub.add_parser("all", help="prepare every corpus named in a corpora YAML")
    pa.add_argument("--corpora", type=Path, required=True, help="YAML with a corpora: mapping")
    pa.add_argument("--output-dir", type=Path, required=True)
    pa.add_argument("--num-jobs", type=int, default=1)
    pa.add_argument("--sections", default="corpora", help="comma-separated YAML sections")
    pn = sub.add_parser("names", help="corpora of a YAML section with a prepared train manifest")
    pn.add_argument("--corpora", type=Path, required=True)
    pn.add_argument("--output-dir", type=Path, required=True)
    pn.add_argument("--section", default="corpora")
    pn.add_argument("--split", default="train")
    run_hints, run_opts = typing.get_type_hints(PrepareRun), run_defaults()
    for name, fn in sorted(corpora.items()):
        doc = (inspect.getdoc(fn) or "").split("\n")[0]
        sp = sub.add_parser(name, help=doc, description=inspect.getdoc(fn))
        hints = typing.get_type_hints(fn)
        for pname, param in inspect.signature(fn).parameters.items():
            if param.kind is not inspect.Parameter.VAR_KEYWORD:
                _add_param(sp, pname, hints.get(pname, str), param.default)
        if takes_run(fn):
            for key, default in run_opts.items():
                _add_param(sp, key, run_hints[key], default)
    return p


def prepare_one(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """Call ``prepare_<name>(**options)`` after checking the option names."""
    corpora = load_corpus_modules()
    if name not in corpora:
        raise ConfigError(f"unknown corpus {name!r}; known: {', '.join(sorted(corpora))}")
    fn = corpora[name]
    params = option_names(fn)
    unknown = sorted(set(options) - set(params))
    if unknown:
        raise ConfigError(
            f"corpus {name}: unknown option(s) {', '.join(unknown)}; known: {', '.join(params)}"
        )
    return fn(**options)


def _section(corpora_yaml: Path, section: str) -> dict[str, Any]:
    try:
        cfg = yaml.safe_load(corpora_yaml.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{corpora_yaml}: invalid YAML: {e}") from None
    entries = cfg.get(section)
    if not isinstance(entries, dict):
        raise ConfigError(f"{corpora_yaml}: expected a top-level '{section}:' mapping")
    return entries


def prepare_all(
    corpora_yaml: Path, output_dir: Path, num_jobs: int = 1, sections: str = "corpora"
) -> list[str]:
    """Prepare every corpus of ``corpora_yaml``'s ``sections`` with an existing ``corpus_dir``.

    Returns the names prepared. Raises ConfigError naming the file and key on a bad YAML.
    """
    known = load_corpus_modules()
    done = []
    entries = [
        (sec, name, opts)
        for sec in sections.split(",")
        for name, opts in _section(corpora_yaml, sec).items()
    ]
    for section, name, opts in entries:
        opts = dict(opts or {})
        if name not in known:
            raise ConfigError(
                f"{corpora_yaml}: {section}.{name}: unknown corpus; known: "
                f"{', '.join(sorted(known))}"
            )
        path = opts.get("corpus_dir")
        if not path:
            log.info("corpus %s: no corpus_dir in %s; skipped", name, corpora_yaml)
            continue
        path = Path(path)
        if not path.is_absolute():
            path = (corpora_yaml.parent / path).resolve() if not path.exists() else path
        if not path.is_dir():
            log.warning("corpus %s: %s is not a folder; skipped", name, path)
            continue
        opts["corpus_dir"] = path
        opts.setdefault("output_dir", output_dir)
        if "num_jobs" in option_names(known[name]):
            opts.setdefault("num_jobs", num_jobs)
        log.info("corpus %s: preparing from %s", name, path)
        try:
            prepare_one(name, opts)
        except ConfigError as e:
            raise ConfigError(f"{corpora_yaml}: {section}.{name}: {e}") from None
        done.append(name)
    if not done:
        log.warning("no corpus prepared: give corpus_dir paths in %s", corpora_yaml)
    return done


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    args = build_parser().parse_args(argv)
    if args.corpus == "list":
        for name, fn in sorted(load_corpus_modules().items()):
            print(f"{name:20s} {(inspect.getdoc(fn) or '').splitlines()[0]}")
        return 0
    if args.corpus == "all":
        prepare_all(args.corpora, args.output_dir, args.num_jobs, args.sections)
        return 0
    if args.corpus == "names":
        names = [
            n
            for n in _section(args.corpora, args.section)
            if manifest_path(args.output_dir, n, args.split).is_file()
        ]
        print(",".join(names))
        return 0
    opts = {k: v for k, v in vars(args).items() if k != "corpus"}
    if not Path(opts["corpus_dir"]).is_dir():
        raise ConfigError(f"--corpus-dir {opts['corpus_dir']} is not a folder")
    try:
        prepare_one(args.corpus, opts)
    except FileNotFoundError as e:  # no audio files / no listing: the user's input, one line
        raise ConfigError(f"{args.corpus}: {e}") from None
    return 0


def cli() -> None:
    run_cli(main)


if __name__ == "__main__":
    cli()
