"""Model weights from files: read any weights file or model directory without running code from
it, map its keys, load it into a module strictly with a report. Used by ``encoder.init_from``,
the run loader (:mod:`toolkit.runs`) and export.

Weights files: ``.safetensors``; ``.pt``/``.pth``/``.bin``/``.ckpt`` read with
``torch.load(weights_only=True)`` (a toolkit checkpoint, ``{"model" | "state_dict" |
"model_state_dict": ...}`` or a plain state dict). A directory is read through its weights file
(:func:`weights_file`). An encoder plugin may accept foreign layouts (e.g. released icefall /
Auden Zipformer checkpoints) through an ``import_state_dict(state) -> dict | None`` method: it
returns the entries of a whole checkpoint it recognises in its own keys (else None); the report
then says which layout was imported.

``encoder.init_from`` YAML: ``encoder: {name: ..., init_from: exp/sup/model.pt, init_key_map: {old.: new.},
init_strict: true}``. These three keys are taken out of the encoder block before the encoder
registry checks and builds it (:func:`split_init_keys`); :func:`toolkit.model.build_model` then
loads the weights with :func:`load_init`. See docs/init_from.md.
"""

from __future__ import annotations

import logging
import pickle
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from toolkit.config import ConfigError, check_type, locate

log = logging.getLogger(__name__)
INIT_KEYS = ("init_from", "init_key_map", "init_strict")
STATE_KEYS = ("model", "state_dict", "model_state_dict")  # where checkpoints keep the weights


@dataclass
class InitSpec:
    """The ``init_*`` keys of a plugin block."""

    path: str
    key_map: dict[str, str] = field(default_factory=dict)
    strict: bool = True


@dataclass
class LoadReport:
    """What a load did: keys are the module's names (after prefix, key_map and conversion)."""

    path: str
    loaded: list[str] = field(default_factory=list)
    imported: str = ""  # the foreign layout the entries were imported from (else empty)
    verb: str = "load"  # the table's first word: "load", "init from"
    missing: list[str] = field(default_factory=list)  # in the module, not in the checkpoint
    unexpected: list[str] = field(default_factory=list)  # in the checkpoint, not in the module
    mismatched: list[tuple[str, tuple, tuple]] = field(default_factory=list)  # key, ckpt, model
    outside_prefix: int = 0  # checkpoint entries not under ``prefix`` (other model parts)
    prefix_used: bool = True  # False: no entry had the prefix, keys were taken as they are
    shapes: dict[str, tuple] = field(default_factory=dict)  # of missing/unexpected keys

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def summary(self) -> str:
        imported = f" (imported from {self.imported})" if self.imported else ""
        return (
            f"{len(self.loaded)} loaded{imported}, {len(self.missing)} missing, "
            f"{len(self.unexpected)} unexpected, {len(self.mismatched)} shape mismatch"
        )

    def table(self) -> str:
        """A readable table of the summary and every bad key with its shapes."""
        rows = [("status", "key", "checkpoint", "model")]
        rows += [("mismatch", k, str(c), str(m)) for k, c, m in self.mismatched]
        rows += [("missing", k, "-", str(self.shapes.get(k, ""))) for k in self.missing]
        rows += [("unexpected", k, str(self.shapes.get(k, "")), "-") for k in self.unexpected]
        head = f"{self.verb} {self.path}: {self.summary()}"
        if self.outside_prefix:
            head += f", {self.outside_prefix} checkpoint entries outside the prefix (ignored)"
        if not self.prefix_used:
            head += " (no key had the prefix: keys used as they are)"
        if len(rows) == 1:
            return head
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        return "\n".join([head, *("  " + ln for ln in lines)])

    def bad_keys(self, limit: int = 10) -> str:
        """One line listing the bad keys (at most ``limit`` of each kind)."""

        def some(items: list[str]) -> str:
            more = f", ... ({len(items) - limit} more)" if len(items) > limit else ""
            return ", ".join(items[:limit]) + more

        parts = []
        if self.mismatched:
            parts.append(
                "shape mismatch: "
                + some([f"{k} (checkpoint {c} vs model {m})" for k, c, m in self.mismatched])
            )
        if self.missing:
            parts.append("missing: " + some(self.missing))
        if self.unexpected:
            parts.append("unexpected: " + some(self.unexpected))
        return "; ".join(parts)


def split_init_keys(
    block: Mapping[str, Any], key: str = "encoder"
) -> tuple[dict[str, Any], InitSpec | None]:
    """``(block without the init_* keys, InitSpec or None)``; type-checks the init keys."""
    rest = {k: v for k, v in block.items() if k not in INIT_KEYS}
    if not any(k in block for k in INIT_KEYS):
        return rest, None
    if block.get("init_from") in (None, ""):
        extra = [k for k in INIT_KEYS if k in block and k != "init_from"]
        if extra:
            raise ConfigError(
                f"{locate(f'{key}.{extra[0]}')}{key}.{extra[0]}: needs {key}.init_from"
            )
        return rest, None
    check_type(block["init_from"], str, f"{key}.init_from")
    key_map = block.get("init_key_map") or {}
    check_type(key_map, dict, f"{key}.init_key_map")
    for old, new in key_map.items():
        check_type(old, str, f"{key}.init_key_map")
        check_type(new, str, f"{key}.init_key_map.{old}")
    strict = block.get("init_strict", True)
    check_type(strict, bool, f"{key}.init_strict")
    return rest, InitSpec(block["init_from"], dict(key_map), strict)


class CheckpointError(RuntimeError):
    """A checkpoint could not be written or read."""


def _numpy_rng_globals() -> list[Any]:
    """The NumPy globals that :func:`rng_state`'s NumPy state pickles (its MT19937 key is a
    ``uint32`` array), under the names NumPy 2 (``numpy._core``) and NumPy 1 (``numpy.core``)
    write: nothing that can run code."""
    try:
        from numpy._core.multiarray import _reconstruct  # NumPy >= 2
    except ImportError:  # pragma: no cover - NumPy 1
        from numpy.core.multiarray import _reconstruct
    return [
        (_reconstruct, "numpy._core.multiarray._reconstruct"),
        (_reconstruct, "numpy.core.multiarray._reconstruct"),
        np.ndarray,
        np.dtype,
        type(np.dtype(np.uint32)),  # numpy.dtypes.UInt32DType
    ]


def _load_error(path: Path, e: Exception) -> CheckpointError:
    """One line naming the file and the reason (torch's messages run over several lines)."""
    text = str(e)
    m = re.search(r"(Unsupported global: GLOBAL \S+|Can only build [^\n]*)", text)
    if m:
        reason = f"{m.group(1)} (refused: loading it could run code from the file)"
    else:
        text = text.split("WeightsUnpickler error:")[-1]
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        reason = f"{lines[0] if lines else type(e).__name__} (not a checkpoint, or a damaged one)"
    return CheckpointError(f"cannot read {path}: {reason}")


def load_weights_only(path: Path) -> Any:
    """``torch.load`` (to CPU) that never runs code from the file, for files of unknown origin.

    ``weights_only=True`` first; a file that needs more globals (the toolkit's own checkpoints:
    their RNG states hold NumPy arrays) is loaded again with only the NumPy types of
    :func:`rng_state` allowed. Anything else (a pickled callable, a truncated or foreign file)
    raises :class:`CheckpointError` naming the path and the reason."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "Unsupported global" not in str(e) and "Can only build" not in str(e):
            raise _load_error(path, e) from e
    except Exception as e:
        raise _load_error(path, e) from e
    try:
        with torch.serialization.safe_globals(_numpy_rng_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise _load_error(path, e) from e


def model_weights(state: dict[str, Any], source: Any = None) -> dict[str, Any]:
    """The weights to evaluate in a checkpoint or ``model.pt``: its EMA (``"ema"``, written with
    ``train.ema_decay``) when present, else ``"model"``. Logs which (naming ``source``)."""
    use_ema = isinstance(state.get("ema"), dict)
    log.info(
        "%susing the %s weights",
        f"{source}: " if source else "",
        "EMA (train.ema_decay)" if use_ema else "model",
    )
    return state["ema"] if use_ema else state["model"]


WEIGHT_FILES = ("model.safetensors", "model.pt", "pretrained.pt", "pytorch_model.bin")
WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt")


def weights_file(folder: str | Path) -> Path:
    """The weights file of a directory: the first of :data:`WEIGHT_FILES`, else the newest
    ``checkpoints/checkpoint-N.pt``. Raises :class:`ConfigError` listing what was looked for."""
    d = Path(folder)
    for name in WEIGHT_FILES:
        if (d / name).is_file():
            return d / name
    ckpts = sorted((d / "checkpoints").glob("checkpoint-*.pt"), key=_step_of)
    if ckpts:
        return ckpts[-1]
    raise ConfigError(
        f"{d}: no weights file (looked for {', '.join(WEIGHT_FILES)} and checkpoints/"
        f"checkpoint-N.pt; found: {sorted(p.name for p in d.iterdir())[:10]})"
    )


def _step_of(p: Path) -> int:
    tail = p.stem.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else -1


def read_weights(path: str | Path) -> dict[str, Tensor]:
    """Name → tensor weights of a file or directory (see the module docstring), never running
    code from it. A toolkit checkpoint gives its EMA weights when it has them.

    Raises:
        ConfigError: naming the file: missing, or holding no weights.
        CheckpointError: naming the file: unreadable, truncated, or refused (pickled code).
    """
    p = Path(path)
    if p.is_dir():
        p = weights_file(p)
    if not p.is_file():
        raise ConfigError(f"{p}: no such weights file")
    if p.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(p))
        except (SafetensorError, OSError, ValueError) as e:
            raise ConfigError(f"cannot read {p} as safetensors: {e}") from e
    obj = load_weights_only(p)  # CheckpointError naming the file and the reason
    if isinstance(obj, Mapping):
        if isinstance(obj.get("ema"), Mapping) or isinstance(obj.get("model"), Mapping):
            obj = model_weights(dict(obj), p)
        else:
            for k in STATE_KEYS:
                if isinstance(obj.get(k), Mapping):
                    obj = obj[k]
                    break
    if (
        not isinstance(obj, Mapping)
        or not obj
        or not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items())
    ):
        keys = list(obj)[:8] if isinstance(obj, Mapping) else type(obj).__name__
        raise ConfigError(
            f"{p} holds no model state dict (expected a toolkit checkpoint with 'model', "
            f"or a name → tensor mapping); found: {keys}"
        )
    return dict(obj)


def read_state_dict(path: str | Path, config_key: str = "") -> dict[str, Tensor]:
    """:func:`read_weights` with errors prefixed by ``config_key`` and its location."""
    where = f"{locate(config_key)}{config_key}: " if config_key else ""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{where}cannot initialise from {p}: no such file")
    try:
        return read_weights(p)
    except (ConfigError, CheckpointError) as e:
        raise ConfigError(f"{where}{e}") from e


def map_keys(
    state: Mapping[str, Tensor], prefix: str = "encoder.", key_map: Mapping[str, str] | None = None
) -> tuple[dict[str, Tensor], int, bool]:
    """Strip ``prefix`` (entries without it are dropped and counted; if no entry has it, keys
    are kept as they are), then rewrite the longest matching ``key_map`` old prefix → new prefix.
    Returns ``(mapped state, number dropped, prefix used)``."""
    use_prefix = bool(prefix) and any(k.startswith(prefix) for k in state)
    out: dict[str, Tensor] = {}
    dropped = 0
    olds = sorted(key_map or {}, key=len, reverse=True)
    for k, v in state.items():
        if use_prefix:
            if not k.startswith(prefix):
                dropped += 1
                continue
            k = k[len(prefix) :]
        for old in olds:
            if k.startswith(old):
                k = key_map[old] + k[len(old) :]  # type: ignore[index]
                break
        if k in out:
            raise ConfigError(f"init key_map maps two checkpoint entries onto {k!r}")
        out[k] = v
    return out, dropped, use_prefix or not prefix


def load_state(
    module: nn.Module,
    state: Mapping[str, Tensor],
    source: str | Path,
    allow_partial: Sequence[str] | bool = (),
    config_key: str = "",
    outside_prefix: int = 0,
    prefix_used: bool = True,
    imported: str = "",
    verb: str = "load",
) -> LoadReport:
    """Load ``state`` (keys already in the module's names) into ``module`` with a report.

    Any missing, unexpected or shape-mismatched key raises :class:`ConfigError` naming
    ``source`` and the first bad keys, and nothing is loaded, unless every bad key starts with
    one of ``allow_partial``'s prefixes (``True``: any key); then the matching entries load and
    the report is logged as a warning.
    """
    state = dict(state)
    report = LoadReport(str(source), outside_prefix=outside_prefix, prefix_used=prefix_used)
    report.imported = imported
    report.verb = verb
    own = module.state_dict()
    for k, v in state.items():
        if k not in own:
            report.unexpected.append(k)
            report.shapes[k] = tuple(v.shape)
        elif tuple(v.shape) != tuple(own[k].shape):
            report.mismatched.append((k, tuple(v.shape), tuple(own[k].shape)))
        else:
            report.loaded.append(k)
    report.missing = [k for k in own if k not in state]
    report.shapes.update({k: tuple(own[k].shape) for k in report.missing})
    bad = report.missing + report.unexpected + [k for k, _, _ in report.mismatched]
    allowed = allow_partial is True or (
        bool(allow_partial) and all(k.startswith(tuple(allow_partial)) for k in bad)  # type: ignore[arg-type]
    )
    if bad and not allowed:
        log.error("%s", report.table())
        where = f"{locate(config_key)}{config_key}: " if config_key else ""
        raise ConfigError(
            f"{where}{source} does not fit the model: {report.bad_keys()}; {_likely_cause(report)}"
        )
    module.load_state_dict({k: state[k] for k in report.loaded}, strict=False)
    (log.info if report.ok else log.warning)("%s", report.table())
    return report


def _likely_cause(report: LoadReport) -> str:
    if report.mismatched:
        return "likely another size/preset of the architecture than the config builds"
    if report.loaded and report.missing and not report.unexpected:
        return "likely a checkpoint of part of the model (or of a smaller preset)"
    if not report.loaded:
        return "likely another kind of checkpoint (no key matches this model)"
    return "likely another architecture or a checkpoint saved with other module names"


def load_init(
    module: nn.Module,
    path: str | Path,
    prefix: str = "encoder.",
    key_map: dict[str, str] | None = None,
    strict: bool = True,
    config_key: str = "",
) -> LoadReport:
    """Load the weights of ``path`` (a file or model directory) into ``module`` (keys: strip
    ``prefix``, then ``key_map``; or the module's ``import_state_dict`` for a foreign layout).

    The report (missing / unexpected / shape-mismatched keys) is logged as a table.
    ``strict=True``: any bad key raises :class:`ConfigError` naming the file and the keys, and
    nothing is loaded; ``strict=False``: every entry whose name and shape match is loaded.
    ``config_key`` (e.g. ``"encoder.init_from"``) prefixes error messages with its location.
    """
    raw = read_state_dict(path, config_key)
    importer = getattr(module, "import_state_dict", None)
    foreign = importer(raw) if callable(importer) and not key_map else None
    if foreign is not None:  # a released layout the module recognises (any prefix)
        state, used = dict(foreign), True
        dropped = len(getattr(foreign, "dropped", ()))
    else:
        state, dropped, used = map_keys(raw, prefix, key_map)
    try:
        layout = getattr(foreign, "layout", "a released layout") if foreign is not None else ""
        return load_state(
            module, state, path, not strict, config_key, dropped, used, layout, "init from"
        )
    except ConfigError as e:
        raise ConfigError(f"{e}; fix the keys with init_key_map or set init_strict: false") from e
