"""YAML configs: includes, dotted command-line overrides, provenance, type checks, dump.

A config is a plain nested ``dict``. Loading also records, for every dotted key, where its value
came from (``conf/train.yaml:12`` or ``command line``), so that errors raised anywhere while
building plugins can name the file and line (:func:`locate`).

Includes: a top-level ``include: [base.yaml, ...]`` (paths relative to the including file) is
merged first, in order; the including file's own keys win. Overrides ``a.b.c=value`` are parsed as
YAML values (``optim.lr=3e-4``, ``train.precision=bf16``, ``data.train=[a,b]``) and win over files.
"""

from __future__ import annotations

import contextvars
import copy
import dataclasses
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A bad config: the message is one line naming the file/line, the key and the options."""


_PROVENANCE: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "config_provenance", default=None
)


def locate(key: str) -> str:
    """``"file:line: "`` for a dotted key (or its closest ancestor), ``""`` when unknown."""
    prov = _PROVENANCE.get() or {}
    k = key
    while k:
        if k in prov:
            return f"{prov[k]}: "
        k = k.rpartition(".")[0]
    return ""


def set_provenance(prov: Mapping[str, str]) -> None:
    """Make ``prov`` the provenance used by :func:`locate` (done by :func:`load_config`)."""
    _PROVENANCE.set(dict(prov))


# --------------------------------------------------------------------------- loading


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that records the line of every mapping key."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    mapping: dict = {}
    lines: dict = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        mapping[key] = loader.construct_object(value_node, deep=deep)
        lines[key] = key_node.start_mark.line + 1
    mapping["__lines__"] = lines
    return mapping


_LineLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,  # type: ignore[arg-type]
)
# plain YAML reads 1e-3 as a string; accept it as a float like every ML config reader does
_LineLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$"),
    list("-+0123456789."),
)


def _strip_lines(obj: Any, file: str, prefix: str, prov: dict[str, str]) -> Any:
    if isinstance(obj, dict):
        lines = obj.pop("__lines__", {})
        out = {}
        for k, v in obj.items():
            full = f"{prefix}.{k}" if prefix else str(k)
            prov[full] = f"{file}:{lines.get(k, '?')}"
            out[k] = _strip_lines(v, file, full, prov)
        return out
    if isinstance(obj, list):
        return [_strip_lines(v, file, f"{prefix}[{i}]", prov) for i, v in enumerate(obj)]
    return obj


def _read_yaml(path: Path, prov: dict[str, str], stack: tuple[Path, ...] = ()) -> dict:
    path = path.resolve()
    if path in stack:
        raise ConfigError(f"{path}: include cycle: {' -> '.join(map(str, stack + (path,)))}")
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config: {e.strerror}") from e
    try:
        raw = yaml.load(text, Loader=_LineLoader)
    except yaml.YAMLError as e:
        ctx, mark = getattr(e, "context_mark", None), getattr(e, "problem_mark", None)
        line = f":{(ctx or mark).line + 1}" if (ctx or mark) is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        if ctx is not None and getattr(e, "context", None):
            problem = f"{e.context}: {problem} (line {mark.line + 1})" if mark else e.context
        raise ConfigError(f"{path}{line}: invalid YAML: {problem}") from e
    if raw is None:
        raw = {"__lines__": {}}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}:1: a config must be a mapping, got {type(raw).__name__}")
    own_prov: dict[str, str] = {}
    data = _strip_lines(raw, str(path), "", own_prov)
    includes = data.pop("include", [])
    where = own_prov.pop("include", str(path))
    if isinstance(includes, str):
        includes = [includes]
    if not isinstance(includes, list) or not all(isinstance(i, str) for i in includes):
        raise ConfigError(f"{where}: include: expected a file name or a list of file names")
    merged: dict = {}
    for inc in includes:
        sub_prov: dict[str, str] = {}
        if not (path.parent / inc).is_file():
            raise ConfigError(
                f"{where}: include: cannot read config {inc}: no such file "
                f"{path.parent / inc} (include paths are relative to the including file)"
            )
        sub = _read_yaml(path.parent / inc, sub_prov, stack + (path,))
        merged = deep_merge(merged, sub)
        prov.update(sub_prov)
    prov.update(own_prov)
    return deep_merge(merged, data)


def deep_merge(base: Mapping, top: Mapping) -> dict:
    """Recursive merge; values of ``top`` win. A mapping replacing a plugin with another
    ``name`` replaces the whole block (keys of the old plugin would not fit the new one)."""
    out = dict(base)
    for k, v in top.items():
        old = out.get(k)
        if isinstance(old, Mapping) and isinstance(v, Mapping):
            if "name" in v and "name" in old and v["name"] != old["name"]:
                out[k] = dict(v)
            else:
                out[k] = deep_merge(old, v)
        else:
            out[k] = v
    return out


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"a.b.c=1e-3"`` → (``["a","b","c"]``, ``0.001``)."""
    if "=" not in text:
        raise ConfigError(f"command line: override {text!r} must look like key.sub=value")
    key, _, value = text.partition("=")
    key = key.strip().lstrip("-")
    if not key or any(not p for p in key.split(".")):
        raise ConfigError(f"command line: bad override key {key!r} in {text!r}")
    try:
        parsed = yaml.load(value, Loader=_LineLoader) if value.strip() else None
    except yaml.YAMLError as e:
        raise ConfigError(f"command line: {key}: cannot parse value {value!r}: {e}") from e
    parsed = _strip_lines(parsed, "command line", key, {})
    return key.split("."), parsed


def apply_overrides(cfg: dict, overrides: Iterable[str], prov: dict[str, str]) -> dict:
    """Apply dotted overrides in order (new keys are allowed here; validation catches typos)."""
    for text in overrides:
        parts, value = parse_override(text)
        node = cfg
        for i, p in enumerate(parts[:-1]):
            nxt = node.get(p)
            if not isinstance(nxt, dict):
                if nxt is not None:
                    where = ".".join(parts[: i + 1])
                    raise ConfigError(
                        f"command line: {'.'.join(parts)}: {where} is a {type(nxt).__name__}, "
                        "not a section"
                    )
                nxt = node[p] = {}
            node = nxt
        node[parts[-1]] = value
        full = ".".join(parts)
        for k in [k for k in prov if k.startswith(full + ".")]:
            del prov[k]
        prov[full] = "command line"
    return cfg


def load_config(
    paths: str | Path | Iterable[str | Path] | None, overrides: Iterable[str] = ()
) -> dict:
    """Load and merge YAML files (with their includes), then apply overrides.

    The provenance (file:line) of every key is installed for :func:`locate`; the config itself
    stays a plain dict that can be dumped as is.
    """
    if paths is None:
        paths = []
    elif isinstance(paths, (str, Path)):
        paths = [paths]
    return load_over({}, paths, overrides)


def load_over(
    base: Mapping, paths: Iterable[str | Path] = (), overrides: Iterable[str] = ()
) -> dict:
    """``base`` (a config read elsewhere, e.g. JSON) with YAML files merged over it, then dotted
    overrides; the provenance of the files' keys is installed as by :func:`load_config`."""
    prov: dict[str, str] = {}
    cfg = copy.deepcopy(dict(base))
    for p in paths:
        cfg = deep_merge(cfg, _read_yaml(Path(p), prov))
    apply_overrides(cfg, overrides, prov)
    set_provenance(prov)
    return cfg


def resolve_paths(
    cfg: dict,
    keys: Iterable[str],
    resolve: Callable[[str, str], str | None],
    reference: Mapping | None = None,
) -> None:
    """Replace the path values of ``keys`` in ``cfg`` by ``resolve(key, value)`` (None: left as
    it is). With ``reference``, only keys whose value equals the reference's are resolved: a
    path that an extra config file or an override changed is the user's, taken as given."""
    for key in keys:
        value = get_key(cfg, key)
        if not value or (reference is not None and value != get_key(reference, key)):
            continue
        found = resolve(key, value)
        if found is not None:
            set_key(cfg, key, found)


def get_key(cfg: Mapping[str, Any], dotted: str) -> Any:
    """``cfg["a"]["b"]`` for ``"a.b"`` (None where any level is missing)."""
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def set_key(cfg: dict, dotted: str, value: Any) -> None:
    """Set ``cfg["a"]["b"] = value`` for ``"a.b"`` (the levels above must exist)."""
    *parents, last = dotted.split(".")
    node = cfg
    for part in parents:
        node = node[part]
    node[last] = value


def dump_config(cfg: Mapping, path: str | Path) -> None:
    """Write the resolved config as YAML (atomically)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(yaml.safe_dump(to_plain(cfg), sort_keys=False, default_flow_style=None))
    tmp.replace(path)


def to_plain(obj: Any) -> Any:
    """Dataclasses/tuples/paths → plain YAML-safe objects."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_plain(dataclasses.asdict(obj))
    if isinstance(obj, Mapping):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


# --------------------------------------------------------------------------- type checks


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def check_type(value: Any, tp: Any, key: str) -> None:
    """Raise :class:`ConfigError` if ``value`` does not fit the annotation ``tp``."""
    if not _fits(value, tp):
        raise ConfigError(
            f"{locate(key)}{key}: expected {_type_name(tp)}, got {value!r} ({type(value).__name__})"
        )


def _fits(value: Any, tp: Any) -> bool:
    if tp is Any or tp is typing.Any:
        return True
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in args)
    if origin is typing.Literal:
        return value in args
    if tp is type(None):
        return value is None
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is bool:
        return isinstance(value, bool)
    if tp is str or tp is Path:
        return isinstance(value, str)
    if origin in (list, tuple, typing.Sequence, Sequence):
        if not isinstance(value, (list, tuple)):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(args) == len(value) and all(_fits(v, a) for v, a in zip(value, args))
        inner = args[0] if args else Any
        return all(_fits(v, inner) for v in value)
    if origin in (dict, Mapping) or tp in (dict, Mapping):
        return isinstance(value, Mapping)
    if tp in (list, tuple):
        return isinstance(value, (list, tuple))
    if isinstance(tp, type):
        return isinstance(value, tp)
    return True


def build_section(cls: type, cfg: Mapping[str, Any] | None, key: str) -> Any:
    """Build a dataclass section (``data``, ``train``, ...) from a mapping with key/type checks."""
    if cfg is not None and not isinstance(cfg, Mapping):
        raise ConfigError(
            f"{locate(key)}{key}: expected a mapping of keys, got {cfg!r} ({type(cfg).__name__})"
        )
    cfg = dict(cfg or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for k, v in cfg.items():
        full = f"{key}.{k}"
        if k not in fields:
            raise ConfigError(
                f"{locate(full)}{full}: unknown key in '{key}'; known keys: {', '.join(sorted(fields))}"
            )
        check_type(v, hints[k], full)
    missing = [
        n
        for n, f in fields.items()
        if f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING  # type: ignore[misc]
        and n not in cfg
    ]
    if missing:
        raise ConfigError(f"{locate(key)}{key}.{missing[0]}: required key missing")
    return cls(**cfg)
