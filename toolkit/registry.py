"""Plugin registries: one per plugin kind, each mapping a name to a class (or factory).

A plugin is registered with a decorator and built from a YAML block ``{name: ..., **kwargs}``::

    @ENCODERS.register("transformer")
    class TransformerEncoder(nn.Module): ...

    encoder = ENCODERS.build({"name": "transformer", "dim": 256}, key="encoder")

``build`` checks every key against the plugin's signature and type hints, so a misspelt key, an
unknown plugin or a wrongly typed value is one clear line naming the config file, the key and the
known options (see :mod:`toolkit.config` for where file/line information comes from).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from toolkit.config import ConfigError, check_type, locate

T = TypeVar("T")


class Registry:
    """A name → class table for one plugin kind (e.g. ``encoder``).

    ``sources``: the built-in modules (or packages: every module in them) whose import
    registers this kind's plugins; they are imported on the first lookup of this kind only, so
    an objective lookup never imports the evaluators."""

    def __init__(self, kind: str, sources: Iterable[str] = ()) -> None:
        self.kind = kind
        self.sources = tuple(sources)
        self._table: dict[str, Callable[..., Any]] = {}
        self._loaded = False

    def load_builtins(self) -> None:
        """Import this kind's built-in plugin modules (once)."""
        if self._loaded:
            return
        self._loaded = True
        for mod in _expand(self.sources):
            importlib.import_module(mod)

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering ``cls`` under ``name``; a duplicate name is an error."""

        def deco(obj: T) -> T:
            if name in self._table and self._table[name] is not obj:
                raise ValueError(
                    f"{self.kind} {name!r} is already registered by {self._table[name]}"
                )
            self._table[name] = obj  # type: ignore[assignment]
            return obj

        return deco

    def names(self) -> list[str]:
        """Sorted registered names."""
        self.load_builtins()
        return sorted(self._table)

    def get(self, name: str, key: str = "") -> Callable[..., Any]:
        """The class registered as ``name``; ``key`` is the dotted config key for error messages."""
        self.load_builtins()
        if name not in self._table:
            where = f"{key}.name" if key else "name"
            raise ConfigError(
                f"{locate(where)}{where}: unknown {self.kind} {name!r}; known: {', '.join(self.names())}"
            )
        return self._table[name]

    def check(
        self, cfg: Mapping[str, Any], key: str = "", supplied: Iterable[str] = ()
    ) -> Callable[..., Any]:
        """Validate a block ``{name, **kwargs}`` without building it; returns the plugin class.

        ``supplied`` names the constructor arguments that code, not YAML, will pass.
        """
        key = key or self.kind
        if not isinstance(cfg, Mapping) or "name" not in cfg:
            raise ConfigError(
                f"{locate(key)}{key}: a {self.kind} block needs a 'name'; known: {', '.join(self.names())}"
            )
        cls = self.get(cfg["name"], key)
        kwargs = {k: v for k, v in cfg.items() if k != "name"}
        validate_kwargs(cls, kwargs, key, f"{self.kind} {cfg['name']!r}", supplied=set(supplied))
        return cls

    def build(self, cfg: Mapping[str, Any], key: str = "", **extra: Any) -> Any:
        """Build the plugin described by ``cfg`` (``{name, **kwargs}``).

        ``extra`` are constructor arguments supplied by code (e.g. ``input_dim``), not by YAML;
        those the plugin does not accept are dropped (a tagging objective needs no vocab size).
        """
        cls = self.check(cfg, key, extra)
        params = plugin_params(cls)
        kwargs = {k: v for k, v in cfg.items() if k != "name"}
        return cls(**kwargs, **{k: v for k, v in extra.items() if k in params})

    def items(self) -> list[tuple[str, Callable[..., Any]]]:
        """Sorted ``(name, class)`` pairs of every registered plugin."""
        self.load_builtins()
        return sorted(self._table.items())

    def __contains__(self, name: str) -> bool:
        self.load_builtins()
        return name in self._table

    def __repr__(self) -> str:
        return f"Registry({self.kind}: {', '.join(self.names())})"


def plugin_params(cls: Callable[..., Any]) -> dict[str, inspect.Parameter]:
    """Keyword parameters of a plugin's constructor (``self`` and ``*args``/``**kw`` left out)."""
    target = cls.__init__ if inspect.isclass(cls) else cls
    sig = inspect.signature(target)
    return {
        n: p
        for n, p in sig.parameters.items()
        if n != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }


def validate_kwargs(
    cls: Callable[..., Any],
    kwargs: Mapping[str, Any],
    key: str,
    what: str,
    supplied: set[str] | None = None,
) -> None:
    """Raise :class:`ConfigError` for unknown keys, missing required keys or wrong types."""
    import typing

    params = plugin_params(cls)
    supplied = supplied or set()
    known = sorted(n for n in params if n not in supplied)
    target = cls.__init__ if inspect.isclass(cls) else cls
    try:
        hints = typing.get_type_hints(target)
    except Exception:  # unresolvable annotations: skip type checks, keep key checks
        hints = {}
    for k, v in kwargs.items():
        full = f"{key}.{k}"
        if k not in params or k in supplied:
            raise ConfigError(
                f"{locate(full)}{full}: unknown key for {what}; known keys: {', '.join(known)}"
            )
        if k in hints:
            check_type(v, hints[k], full)
    for n, p in params.items():
        if p.default is inspect.Parameter.empty and n not in kwargs and n not in supplied:
            full = f"{key}.{n}"
            raise ConfigError(f"{locate(key)}{full}: required key missing for {what}")


# Each kind's built-in plugins: packages (every module in them is imported, so a new built-in
# plugin is one file with a ``register`` line) or single modules living beside other code.
FRONTENDS = Registry("frontend", ["toolkit.frontends"])
AUGMENTATIONS = Registry("augmentation", ["toolkit.frontends"])
ENCODERS = Registry("encoder", ["toolkit.encoders"])
TEXT_ENCODERS = Registry("text_encoder", ["toolkit.text"])
TOKENIZERS = Registry("tokenizer", ["toolkit.text"])
OBJECTIVES = Registry("objective", ["toolkit.objectives"])
DECODERS = Registry("decoder", ["toolkit.decoders"])
OPTIMIZERS = Registry("optimizer", ["toolkit.train.optim", "toolkit.train.scaled_adam"])
SCHEDULERS = Registry("scheduler", ["toolkit.train.scheduler"])
EVALUATORS = Registry(
    "evaluator",
    [
        "toolkit.evaluate.evaluators",
        "toolkit.evaluate.captioning",
        "toolkit.evaluate.probes",
        "toolkit.evaluate.qa",
        "toolkit.evaluate.text_alignment",
    ],
)
LANGUAGE_MODELS = Registry("language_model", ["toolkit.evaluate.heads.lm"])
# Corpus recipes (``prepare_<corpus>(corpus_dir, output_dir, ...)``, registered with
# ``toolkit.data.prepare.common.register_corpus``); not a config section, so not in ALL_REGISTRIES.
# The demo generator is a sub-package, which expanding ``toolkit.data.prepare`` passes over.
CORPORA = Registry("corpus", ["toolkit.data.prepare", "toolkit.data.prepare.demo"])

ALL_REGISTRIES = {
    r.kind: r
    for r in (
        FRONTENDS,
        AUGMENTATIONS,
        ENCODERS,
        TEXT_ENCODERS,
        TOKENIZERS,
        OBJECTIVES,
        DECODERS,
        OPTIMIZERS,
        SCHEDULERS,
        EVALUATORS,
        LANGUAGE_MODELS,
    )
}


def _expand(sources: Iterable[str]) -> list[str]:
    """Module names of ``sources``: a package stands for every module in it."""
    mods: list[str] = []
    for src in sources:
        module = importlib.import_module(src)
        if hasattr(module, "__path__"):  # a package
            mods += sorted(
                f"{src}.{m.name}" for m in pkgutil.iter_modules(module.__path__) if not m.ispkg
            )
        else:
            mods.append(src)
    return mods


def builtin_plugin_modules() -> list[str]:
    """Every module whose import registers a built-in plugin (all kinds)."""
    seen: list[str] = []
    for reg in ALL_REGISTRIES.values():
        seen += [m for m in _expand(reg.sources) if m not in seen]
    return seen


def import_plugins(modules: list[str] | None, key: str = "plugins") -> None:
    """Import out-of-tree plugin modules named in a config's ``plugins:`` list."""
    for i, mod in enumerate(modules or []):
        try:
            importlib.import_module(mod)
        except ImportError as e:
            full = f"{key}[{i}]"
            raise ConfigError(
                f"{locate(key)}{full}: cannot import plugin module {mod!r}: {e}"
            ) from e
