"""Registries: registration, duplicates, out-of-tree plugins imported from a config."""

from __future__ import annotations

import sys

import pytest

from toolkit.config import ConfigError
from toolkit.registry import ALL_REGISTRIES, OBJECTIVES, Registry, import_plugins


def test_every_kind_has_a_registry():
    kinds = {"frontend", "encoder", "text_encoder", "objective", "decoder", "optimizer"}
    assert kinds | {"scheduler", "evaluator", "tokenizer"} <= set(ALL_REGISTRIES)
    assert "contrastive" in OBJECTIVES.names()


def test_register_build_and_duplicate():
    reg = Registry("thing")

    @reg.register("a")
    class A:
        def __init__(self, x: int, y: float = 1.0) -> None:
            self.x, self.y = x, y

    obj = reg.build({"name": "a", "x": 2, "y": 3}, key="thing", unused_context=1)
    assert (obj.x, obj.y) == (2, 3.0)
    with pytest.raises(ValueError, match="already registered"):
        reg.register("a")(type("B", (), {}))
    with pytest.raises(ConfigError, match="thing.x: required key missing"):
        reg.build({"name": "a"})
    with pytest.raises(ConfigError, match="needs a 'name'"):
        reg.build({"x": 1})


def test_out_of_tree_plugin(tmp_path, monkeypatch):
    (tmp_path / "my_objective.py").write_text(
        "from toolkit.registry import OBJECTIVES\n"
        "@OBJECTIVES.register('my_test_objective')\n"
        "class Mine:\n"
        "    def __init__(self, encoder_dim: int, weight: float = 1.0):\n"
        "        self.weight = weight\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import_plugins(["my_objective"])
    obj = OBJECTIVES.build({"name": "my_test_objective", "weight": 2}, encoder_dim=4, vocab_size=9)
    assert obj.weight == 2
    with pytest.raises(ConfigError, match="cannot import plugin module 'no_such_mod'"):
        import_plugins(["no_such_mod"])
    sys.modules.pop("my_objective", None)


def test_a_lookup_imports_only_its_own_kind():
    """An objective lookup imports the objective (and what objectives build) but never the
    evaluators or the language models; each kind loads its built-ins on first use."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from toolkit.registry import OBJECTIVES\n"
        "assert 'contrastive' in OBJECTIVES.names()\n"
        "bad = [m for m in sys.modules if m.startswith(('toolkit.evaluate', 'toolkit.evaluate.heads.lm'))]\n"
        "assert not bad, bad\n"
        "from toolkit.registry import EVALUATORS\n"
        "assert 'zero_shot' in EVALUATORS.names() and 'toolkit.evaluate.evaluators' in sys.modules\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
