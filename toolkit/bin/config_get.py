"""Print one dotted key of a resolved config (for shell recipes): ``python -m
toolkit.bin.config_get tokenizer.name -c a.yaml -c b.yaml [k=v ...]``; prints nothing when the
key is absent. Includes and overrides resolve exactly as in training; no plugin is imported."""

from __future__ import annotations

import argparse

from toolkit.bin.common import add_config_args, run_cli
from toolkit.config import get_key, load_config


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("key", help="dotted key, e.g. tokenizer.name")
    add_config_args(p)
    args = p.parse_intermixed_args(argv)
    value = get_key(load_config(args.config, args.overrides), args.key)
    if value is not None:
        print(value)
    return 0


def cli() -> None:
    run_cli(main)


if __name__ == "__main__":
    cli()
