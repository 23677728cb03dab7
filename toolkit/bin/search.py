"""Search an audio index with text: ``toolkit-search INDEX "a dog barking in the rain" -k 10``.

The query is embedded by the model that built the index (recorded in the index; ``--model``
to give its path when the model moved) and the ``k`` files of highest cosine similarity are
printed: TSV ``rank, score, path`` (header first) or JSON lines (``--json``). Exact search on the
CPU; faiss-cpu is used for large indexes when installed (same results; see docs/search.md).
"""

from __future__ import annotations

import argparse
import json

from toolkit.bin.common import run_cli
from toolkit.config import ConfigError
from toolkit.utils.logging import setup_logging


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("index", help="index directory written by toolkit-index")
    p.add_argument("query", nargs="+", help="query text (several: one result list each)")
    p.add_argument("-k", type=int, default=10, help="how many results")
    p.add_argument("--model", "-m", help="the model that built the index (default: recorded)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true", help="JSON lines instead of TSV")
    args = p.parse_args(argv)
    setup_logging(None)
    from toolkit.api import load
    from toolkit.index import AudioIndex

    index = AudioIndex.open(args.index)
    path = args.model or index.meta.get("model")
    if not path:
        raise ConfigError(f"{args.index}: no model recorded in the index; give --model")
    model = load(path, device=args.device)
    hits = model.search(index, list(args.query), k=args.k)
    if not args.json:
        print("query\trank\tscore\tpath" if len(args.query) > 1 else "rank\tscore\tpath")
    for query, found in zip(args.query, hits):
        for h in found:
            if args.json:
                rec = {"query": query, "rank": h.rank, "score": h.score, "path": h.path}
                print(json.dumps(rec, ensure_ascii=False))
            else:
                row = f"{h.rank}\t{h.score:.6f}\t{h.path}"
                print(f"{query}\t{row}" if len(args.query) > 1 else row)
    return 0


def cli() -> None:
    run_cli(main)


if __name__ == "__main__":
    cli()
