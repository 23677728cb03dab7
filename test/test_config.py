"""Config loading, includes, overrides and one-line errors naming file, line, key and options."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from fixtures import write_text

from toolkit.config import ConfigError, dump_config, load_config, locate
from toolkit.model import build_model
from toolkit.registry import ENCODERS
from toolkit.schema import check_top_level, train_config

ROOT = Path(__file__).resolve().parent.parent


def test_include_and_override_precedence(tmp_path):
    write_text(tmp_path / "base.yaml", "optim: {name: adamw, lr: 0.1}\ntrain: {max_steps: 5}\n")
    main = write_text(tmp_path / "main.yaml", "include: base.yaml\noptim: {lr: 0.2}\n")
    cfg = load_config(main, ["optim.lr=3e-4", "train.precision=bf16", "data.train=[a, b]"])
    assert cfg["optim"] == {"name": "adamw", "lr": 3e-4}
    assert cfg["train"] == {"max_steps": 5, "precision": "bf16"}
    assert cfg["data"]["train"] == ["a", "b"]
    dump_config(cfg, tmp_path / "out" / "config.yaml")
    assert load_config(tmp_path / "out" / "config.yaml") == cfg


def test_scientific_notation_is_float(tmp_path):
    cfg = load_config(write_text(tmp_path / "a.yaml", "optim: {lr: 1e-3}\n"))
    assert cfg["optim"]["lr"] == pytest.approx(1e-3)


def test_unknown_plugin_lists_known_and_names_file_line(tmp_path):
    p = write_text(tmp_path / "a.yaml", "seed: 1\nencoder:\n  name: zipfomer\n")
    cfg = load_config(p)
    with pytest.raises(ConfigError) as e:
        ENCODERS.build(cfg["encoder"], key="encoder", input_dim=80)
    msg = str(e.value)
    assert f"{p.resolve()}:3" in msg and "encoder.name" in msg and "zipfomer" in msg
    assert "transformer" in msg and "\n" not in msg


def test_unknown_key_names_key_and_known_keys(tmp_path):
    p = write_text(tmp_path / "a.yaml", "encoder:\n  name: transformer\n  num_layer: 3\n")
    cfg = load_config(p)
    with pytest.raises(
        ConfigError, match=r"a\.yaml:3: encoder\.num_layer: unknown key.*num_layers"
    ):
        ENCODERS.build(cfg["encoder"], key="encoder", input_dim=80)


def test_wrong_type_from_command_line(tmp_path):
    p = write_text(tmp_path / "a.yaml", "encoder: {name: transformer}\n")
    cfg = load_config(p, ["encoder.dim=big"])
    with pytest.raises(ConfigError, match=r"command line: encoder\.dim: expected int, got 'big'"):
        ENCODERS.build(cfg["encoder"], key="encoder", input_dim=80)


def test_section_key_and_type_errors(tmp_path):
    cfg = load_config(write_text(tmp_path / "a.yaml", "train:\n  max_step: 3\n"))
    with pytest.raises(ConfigError, match=r"a\.yaml:2: train\.max_step: unknown key.*max_steps"):
        train_config(cfg)
    cfg = load_config(write_text(tmp_path / "b.yaml", "train:\n  precision: fp8\n"))
    with pytest.raises(
        ConfigError,
        match=r"b\.yaml:2: train\.precision: expected one of 'auto', 'fp32', 'bf16', got 'fp8'",
    ):
        train_config(cfg)
    cfg = load_config(write_text(tmp_path / "c.yaml", "trian: {}\n"))
    with pytest.raises(ConfigError, match=r"c\.yaml:1: trian: unknown config section"):
        check_top_level(cfg)


def test_nested_plugin_errors_name_full_key(tmp_path):
    p = write_text(
        tmp_path / "a.yaml",
        "frontend: {name: fbank}\nencoder: {name: transformer}\nobjective:\n  name: contrastive\n"
        "  text_encoder: {name: transformer, depth: 2}\n",
    )
    cfg = load_config(p)
    with pytest.raises(
        ConfigError, match=r"a\.yaml:5: objective\.text_encoder\.depth: unknown key"
    ):
        build_model(cfg, tokenizer=type("T", (), {"vocab_size": 10})())


def test_bad_yaml_and_missing_include(tmp_path):
    with pytest.raises(ConfigError, match=r"a\.yaml:2: invalid YAML"):
        load_config(write_text(tmp_path / "a.yaml", "x: 1\ny: [1, 2\n"))
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(write_text(tmp_path / "b.yaml", "include: nope.yaml\n"))
    with pytest.raises(ConfigError, match="must look like"):
        load_config(None, ["optim.lr"])


@pytest.mark.slow
def test_cli_error_is_one_line_exit_2(tmp_path):
    p = write_text(tmp_path / "a.yaml", "encoder: {name: nope}\n")
    r = subprocess.run(
        [sys.executable, "-m", "toolkit.bin.train", "-c", str(p), "--exp-dir", str(tmp_path / "e")],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert r.returncode == 2
    err = [line for line in r.stderr.splitlines() if line.startswith("config error")]
    assert len(err) == 1 and "encoder" in err[0] and "transformer" in err[0]


def test_load_over_merges_files_and_overrides_over_a_base_without_changing_it(tmp_path):
    from toolkit.config import load_over

    extra = tmp_path / "extra.yaml"
    extra.write_text("encoder:\n  dim: 64\n")
    base = {"encoder": {"name": "t", "dim": 32}, "data": {"sampling_rate": 16000}}
    cfg = load_over(base, [extra], ["data.sampling_rate=8000"])
    assert cfg == {"encoder": {"name": "t", "dim": 64}, "data": {"sampling_rate": 8000}}
    assert base == {"encoder": {"name": "t", "dim": 32}, "data": {"sampling_rate": 16000}}
    assert locate("encoder.dim").startswith(f"{extra}:2")


def test_resolve_paths_leaves_the_users_paths_alone():
    from toolkit.config import resolve_paths

    own = {"a": {"f": "x.pt", "g": "y.pt", "h": "z.pt"}}
    cfg = {"a": {"f": "x.pt", "g": "mine.pt", "h": "z.pt"}}
    seen = []

    def resolve(key: str, value: str) -> str | None:
        seen.append(key)
        return None if key == "a.h" else f"/run/{value}"

    resolve_paths(cfg, ["a.f", "a.g", "a.h", "a.missing"], resolve, reference=own)
    assert cfg == {"a": {"f": "/run/x.pt", "g": "mine.pt", "h": "z.pt"}}
    assert seen == ["a.f", "a.h"]
