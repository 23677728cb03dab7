"""YAML is parsed with safe loaders only: a config or an override with a Python tag is refused
(naming the file), never constructed, and no module of the package uses an unsafe loader."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from toolkit.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parent.parent


def test_python_tags_are_refused_not_run(tmp_path):
    marker = tmp_path / "pwned"
    conf = tmp_path / "evil.yaml"
    conf.write_text(
        f"seed: !!python/object/apply:pathlib.Path.touch [!!python/object/apply:pathlib.Path ['{marker}']]\n"
    )
    with pytest.raises(
        ConfigError, match=r"evil.yaml:1: invalid YAML: could not determine a constructor"
    ):
        load_config([conf])
    with pytest.raises(ConfigError, match=r"command line: seed: cannot parse value"):
        load_config([], ["seed=!!python/object/apply:os.getcwd []"])
    assert not marker.exists()


def test_no_unsafe_yaml_loader_in_the_package():
    unsafe = re.compile(r"yaml\.(unsafe_load|full_load)\(|Loader=yaml\.(Unsafe|Full)?Loader\b")
    offenders = [
        f"{p.relative_to(ROOT)}:{i}"
        for d in ("toolkit", "bench", "tools", "utils")
        for p in (ROOT / d).rglob("*.py")
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if unsafe.search(line)
    ]
    assert not offenders, offenders
    from toolkit import config

    assert issubclass(config._LineLoader, __import__("yaml").SafeLoader)
