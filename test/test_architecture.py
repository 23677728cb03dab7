"""The package's layers import only downward (docs/architecture.md): every ``import`` of every
module of ``toolkit/`` (also those inside functions) is read from its source, and a module may
import only modules of its own or a lower layer."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# lowest first; a module belongs to the last group with a prefix of its name
LAYERS = [
    ("toolkit.config", "toolkit.utils", "toolkit.registry", "toolkit.distributed",
     "toolkit.audio", "toolkit.layers"),
    ("toolkit.data", "toolkit.weights", "toolkit.schema"),
    ("toolkit.frontends", "toolkit.encoders", "toolkit.text", "toolkit.decoders",
     "toolkit.objectives"),
    ("toolkit.model",),
    ("toolkit.train",),
    ("toolkit.runs",),
    ("toolkit.inference", "toolkit.evaluate", "toolkit.index"),
    ("toolkit.api", "toolkit.hear"),
    ("toolkit.bin",),
]  # fmt: skip


def layer(module: str) -> int | None:
    found = None
    for i, group in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in group):
            found = i
    return found


def imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return {m for m in out if m.startswith("toolkit")}


def test_every_module_has_a_layer():
    for f in (ROOT / "toolkit").rglob("*.py"):
        mod = ".".join(f.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        if mod != "toolkit":
            assert layer(mod) is not None, f"{mod}: add it to a layer in this test and the docs"


def test_imports_run_only_downward():
    climbs = []
    for f in sorted((ROOT / "toolkit").rglob("*.py")):
        mod = ".".join(f.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        own = layer(mod)
        if own is None:
            continue
        for name in imports(f):
            other = layer(name)
            if other is not None and other > own:
                climbs.append(f"{mod} (layer {own}) imports {name} (layer {other})")
    assert not climbs, "\n".join(sorted(set(climbs)))


def test_training_never_imports_evaluation():
    for f in (ROOT / "toolkit" / "train").rglob("*.py"):
        assert not [m for m in imports(f) if m.startswith(("toolkit.evaluate", "toolkit.runs"))]
