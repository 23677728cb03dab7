"""Write every corpus fixture and a ``corpora.yaml`` pointing at them (for the CaptionStew recipe).

    python test/corpus_fixtures/write_all.py /tmp/fixtures   # → /tmp/fixtures/corpora.yaml

Caption corpora go to the ``sources`` section, label-only evaluation corpora to ``downstream``.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

import yaml

SOURCES = ("audiosetcaps", "wavcaps", "audiocaps", "musiccaps", "jamendomaxcaps", "paraspeechcaps")
CAPTION_EVAL = ("clotho",)  # caption corpora used for evaluation only


def fixture_modules() -> list[str]:
    """Names of the fixture modules (every module of this package with ``write_fixture``)."""
    here = Path(__file__).parent
    return sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name not in ("write_all",))


def write_all(root: Path) -> Path:
    """Write each fixture under ``root/<name>`` and return ``root/corpora.yaml``."""
    root = Path(root)
    sys.path.insert(0, str(Path(__file__).parent.parent))
    sections: dict[str, dict] = {"sources": {}, "downstream": {}}
    for name in fixture_modules():
        mod = importlib.import_module(f"corpus_fixtures.{name}")
        if not hasattr(mod, "write_fixture"):
            continue
        corpus_dir = mod.write_fixture(root / name)
        opts = {"corpus_dir": str(corpus_dir), **getattr(mod, "PREPARE_OPTIONS", {})}
        opts = {k: str(v) if isinstance(v, Path) else v for k, v in opts.items()}
        sections["sources" if name in SOURCES else "downstream"][name] = opts
    out = root / "corpora.yaml"
    out.write_text(yaml.safe_dump(sections, sort_keys=False))
    return out


if __name__ == "__main__":
    print(write_all(Path(sys.argv[1] if len(sys.argv) > 1 else "corpus_fixtures")))
