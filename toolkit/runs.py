"""THE run loader: find a run (a training run dir, a checkpoint inside one, or an exported model
directory), resolve the files it names, build its model and load its weights.

Everything that loads a trained model goes through :func:`open_run` (evaluation, embedding
export, the HEAR API, the model API, export). A run directory is relocatable:

* at training start :func:`keep_files_with_run` copies the files a loaded model needs (the
  frontend's feature statistics, the tokenizer model) into the run and writes ``run.json``:
  ``{"format": 1, "origin": <cwd at training time>, "files": {<config key>: <path inside the
  run>}}``;
* when the run is opened, those keys point at the run's own copies, whatever the cwd; any other
  relative path of the run's config (its data manifests) is looked up from the recorded origin,
  then from the run dir and its parents — never from the cwd, so an unrelated
  ``exp/x/fbank_stats.pt`` in the cwd cannot be picked up. Runs older than ``run.json`` are
  resolved the same way without the origin (and the run's own copy by file name).

An exported model directory (:mod:`toolkit.bin.export`) holds ``config.json`` (the resolved
config), ``model.safetensors``, ``run.json`` and the files it names, and opens the same way.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from toolkit.config import (
    ConfigError,
    get_key,
    load_config,
    load_over,
    resolve_paths,
    set_key,
    to_plain,
)
from toolkit.data.sources import source_paths
from toolkit.model import AudioModel, build_model, build_tokenizer
from toolkit.registry import ENCODERS, FRONTENDS, import_plugins
from toolkit.weights import LoadReport, load_state, read_weights, split_init_keys, weights_file

log = logging.getLogger(__name__)

RUN_FILE = "run.json"
RUN_FORMAT = 1
# Config keys naming files that a loaded model needs (copied into the run at training start).
FILE_KEYS = ("frontend.stats_file", "tokenizer.model")
# Config keys naming folders a loaded model needs (recorded with an absolute path, not copied).
FOLDER_KEYS = ("tokenizer.path",)
DATA_KEYS = ("data.train", "data.dev", "data.test")
RELEASE_KINDS = ("auden", "icefall", "auden-clap")
# The sections a model brings when training continues from it (they must match its weights).
MODEL_SECTIONS = ("frontend", "encoder", "objective", "tokenizer")


def _atomic_copy(src: Path, dst: Path) -> None:
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def _file_name(key: str, src: str | Path, taken: dict[str, str]) -> str:
    """The name a run-owned file gets inside the run (prefixed by its section on a clash)."""
    name = Path(src).name
    return f"{key.split('.')[0]}_{name}" if name in taken.values() else name


def keep_files_with_run(cfg: dict[str, Any], run_dir: str | Path) -> dict[str, str]:
    """Copy the files of :data:`FILE_KEYS` into ``run_dir``, point ``cfg`` at the copies and
    write ``run_dir/run.json`` (see the module docstring). Returns its ``files`` table."""
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    for key in FILE_KEYS:
        src = get_key(cfg, key)
        if not src or not Path(src).is_file():
            continue
        name = _file_name(key, src, files)
        dst = run / name
        if Path(src).resolve() != dst.resolve():
            _atomic_copy(Path(src), dst)
        set_key(cfg, key, str(dst))
        files[key] = name
    folders = {}
    for key in FOLDER_KEYS:
        src = get_key(cfg, key)
        if src and Path(src).is_dir():
            folders[key] = str(Path(src).resolve())
    info = {"format": RUN_FORMAT, "origin": str(Path.cwd().resolve()), "files": files}
    if folders:
        info["folders"] = folders
    tmp = run / (RUN_FILE + ".tmp")
    tmp.write_text(json.dumps(info, indent=2) + "\n")
    tmp.replace(run / RUN_FILE)
    return files


def read_run_info(run_dir: Path) -> dict[str, Any]:
    """``run.json`` of a run (``{}`` for runs written before it existed)."""
    path = run_dir / RUN_FILE
    if not path.is_file():
        return {}
    try:
        info = json.loads(path.read_text())
    except ValueError as e:
        raise ConfigError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(info, dict) or int(info.get("format", 0)) > RUN_FORMAT:
        raise ConfigError(f"{path}: unknown run format {info.get('format')!r} (newer toolkit?)")
    return info


@dataclass
class Run:
    """A trained model on disk.

    Attributes:
        dir: the run (or exported model) directory.
        config: its resolved config; the files it owns point at absolute paths inside ``dir``.
        own_config: the run's config alone (no extra configs or overrides), resolved the same way.
        checkpoint: the weights file to load (None: found on first use; see
            :func:`toolkit.weights.weights_file`).
        origin: the cwd the run was trained from (None when unknown).
    """

    dir: Path
    config: dict[str, Any]
    own_config: dict[str, Any]
    checkpoint: Path | None = None
    origin: Path | None = None
    info: dict[str, Any] = field(default_factory=dict)
    report: LoadReport | None = None  # of the last load
    config_file: Path | None = None
    unresolved: dict[str, str] = field(default_factory=dict)  # file key → why not found
    _weights: dict[str, Tensor] | None = field(default=None, repr=False)

    def weights_path(self) -> Path:
        if self.checkpoint is None:
            self.checkpoint = weights_file(self.dir)
        return self.checkpoint

    def weights(self) -> dict[str, Tensor]:
        """The model weights (a checkpoint's EMA weights when it has them), read once."""
        if self._weights is None:
            raw = read_weights(self.weights_path())
            if self.kind == "auden-clap":  # audio tower, text tower, heads → the toolkit's keys
                from toolkit.objectives.clap_release import clap_state_dict

                raw = dict(clap_state_dict(raw, self.info.get("release_config")))
            elif self.kind in RELEASE_KINDS:  # icefall / Auden layout → the toolkit's keys
                from toolkit.encoders.zipformer_release import release_state_dict

                raw = {f"encoder.{k}": v for k, v in release_state_dict(raw).items()}
            self._weights = raw
        return self._weights

    @property
    def kind(self) -> str:
        """``run`` (a training run), ``export`` (toolkit-export), ``auden``, ``auden-clap`` or
        ``icefall``."""
        return str(self.info.get("kind", "run"))

    def resolve(self, value: str | Path) -> Path | None:
        """A relative path of the run's config → an existing absolute path, looked up from the
        run's origin, then the run dir and its parents (never the cwd); None if not found."""
        p = Path(value)
        if p.is_absolute():
            return p if p.exists() else None
        bases = ([self.origin] if self.origin else []) + [self.dir, *self.dir.parents]
        for base in bases:
            if (base / p).exists():
                return (base / p).resolve()
        return None

    def locate(self, key: str, value: str) -> str | None:
        """A run-owned file key's value → an existing path: the run's copy (``run.json``), a
        recorded folder, else looked up like :meth:`resolve`, else the run's copy by file name.
        None (and the reason kept in :attr:`unresolved`) when not found: an error only when a
        part that needs it is built."""
        files = self.info.get("files") or {}
        folders = self.info.get("folders") or {}
        if key in files:
            found: Path | None = self.dir / files[key]
            if not found.is_file():  # type: ignore[union-attr]
                raise ConfigError(f"{self.dir / RUN_FILE}: {key} names {found}, which is missing")
        elif key in folders and Path(folders[key]).is_dir():
            found = Path(folders[key])
        else:
            found = self.resolve(value)
            if found is None and (self.dir / Path(value).name).is_file():
                found = self.dir / Path(value).name
        if found is None:
            self.unresolved[key] = (
                f"{key}: {value} (from {self.dir}) not found in the run, its origin or parents; "
                f"give it with an override, e.g. {key}=/abs/path"
            )
            return None
        return str(found)

    def pretraining_sources(self) -> tuple[Any, list[str]]:
        """The run's own ``data.train`` with its paths resolved, and the paths not found."""
        value = copy.deepcopy(get_key(self.own_config, "data.train"))
        missing: list[str] = []
        if not value:
            return None, missing

        def fix(path: str) -> str:
            found = self.resolve(path)
            if found is None:
                missing.append(path)
                return path
            return str(found)

        if isinstance(value, list):
            for item in value:
                if isinstance(item, dict) and item.get("path"):
                    item["path"] = fix(item["path"])
            return value, missing
        return fix(str(value)) if source_paths(value) else value, missing

    def config_hash(self) -> str:
        """First 12 hex digits of the SHA-1 of the run's config file (as written by training or
        export; the same wherever the run lies)."""
        return (
            hashlib.sha1(self.config_file.read_bytes()).hexdigest()[:12] if self.config_file else ""
        )

    def require(self, *sections: str) -> None:
        """ConfigError for the first file of ``sections`` that could not be found."""
        for key, why in self.unresolved.items():
            if key.split(".")[0] in sections:
                raise ConfigError(why)

    def weights_hash(self) -> str:
        """First 12 hex digits of a SHA-1 over the weights (names and the first 2^18 values of
        each tensor): the same for a run, its export and any copy of them."""
        h = hashlib.sha1()
        for k, v in sorted(self.weights().items()):
            h.update(k.encode())
            h.update(v.detach().cpu().float().contiguous().view(-1)[: 1 << 18].numpy().tobytes())
        return h.hexdigest()[:12]

    def model_id(self) -> str:
        """``<config hash>:<weights hash>``: names the model a result or an index came from."""
        return f"{self.config_hash()}:{self.weights_hash()}"

    def tokenizer(self) -> Any:
        self.require("tokenizer")
        return build_tokenizer(self.config)

    def model(self, tokenizer: Any = None, allow_partial: Any = ()) -> AudioModel:
        """The whole model (frontend, encoder, objective) in eval mode with the run's weights,
        loaded strictly (:func:`toolkit.weights.load_state`)."""
        if not self.config.get("objective"):
            raise ConfigError(
                f"{self.dir}: an encoder-only model (no objective section); use "
                "audio_modules() / toolkit.load(...).embed_audio(space='encoder')"
            )
        if tokenizer is None:
            tokenizer = self.tokenizer()
        self.require("frontend", "objective")
        model = build_model(self.config, tokenizer, init_weights=False)
        weights = dict(self.weights())
        check_vocab(model, weights, tokenizer, self)
        if not any(k.startswith("frontend.") for k in weights):  # released models ship no
            # frontend constants (fbank filters): the frontend built from the config is used
            weights.update({f"frontend.{k}": v for k, v in model.frontend.state_dict().items()})
        self.report = load_state(model, weights, self.weights_path(), allow_partial)
        return model.eval()

    def audio_modules(self) -> tuple[nn.Module, nn.Module, LoadReport]:
        """``(frontend, encoder, report)`` with the run's weights (for embedding only: the
        objective and the tokenizer are not built)."""
        import_plugins(self.config.get("plugins"))
        self.require("frontend")
        for sec in ("frontend", "encoder"):
            if not self.config.get(sec):
                raise ConfigError(f"{sec}: section missing in the config of {self.dir}")
        frontend = FRONTENDS.build(self.config["frontend"], key="frontend")
        enc_cfg, _ = split_init_keys(self.config["encoder"], "encoder")  # trained weights win
        encoder = ENCODERS.build(enc_cfg, key="encoder", input_dim=frontend.output_dim)
        parts = nn.ModuleDict({"frontend": frontend, "encoder": encoder})
        weights = {
            k: v for k, v in self.weights().items() if k.startswith(("frontend.", "encoder."))
        }
        if not any(k.startswith("frontend.") for k in weights):  # released encoders ship no
            # frontend constants (fbank filters): the frontend built from the config is used
            weights.update({f"frontend.{k}": v for k, v in frontend.state_dict().items()})
        if not any(k.startswith("encoder.") for k in weights):
            raise ConfigError(f"{self.weights_path()}: no 'encoder.*' weights in the checkpoint")
        self.report = load_state(parts, weights, self.weights_path())
        return frontend, encoder, self.report


def continue_from(run: Run, recipe: dict[str, Any]) -> dict[str, Any]:
    """The config of a training run that continues from ``run``: the ``recipe`` config (data,
    optimiser, schedule, training, evaluation) with ``run``'s model sections
    (:data:`MODEL_SECTIONS` it has, files resolved) in place of the recipe's. An encoder-only
    model (a released encoder) brings ``frontend`` and ``encoder``; the objective and tokenizer
    then come from the recipe."""
    cfg = copy.deepcopy(recipe)
    for sec in MODEL_SECTIONS:
        if run.config.get(sec):
            cfg[sec] = copy.deepcopy(run.config[sec])
    if isinstance(cfg.get("encoder"), dict):  # the run's weights replace any init_from
        for key in ("init_from", "init_key_map", "init_strict"):
            cfg["encoder"].pop(key, None)
    return cfg


def load_into(run: Run, model: nn.Module) -> LoadReport:
    """Load ``run``'s weights into a freshly built model of :func:`continue_from`'s config:
    strictly, except the parts an encoder-only model does not have (its objective; its
    frontend's constants when it ships none), which keep their fresh values."""
    weights = dict(run.weights())
    allowed: list[str] = []
    if not run.config.get("objective"):
        allowed.append("objective.")
    if not any(k.startswith("frontend.") for k in weights):
        allowed.append("frontend.")
    report = load_state(model, weights, run.weights_path(), tuple(allowed))
    run.report = report
    return report


def check_vocab(model: nn.Module, weights: dict[str, Tensor], tokenizer: Any, run: Run) -> None:
    """A one-line error when the tokenizer's vocabulary does not fit the checkpoint's text
    embedding (the usual sign of a tokenizer of another run)."""
    vocab = getattr(tokenizer, "vocab_size", None)
    if vocab is None:
        return
    own = model.state_dict()
    for k, v in weights.items():
        if k in own and v.dim() >= 1 and own[k].shape != v.shape and vocab in own[k].shape:
            name = get_key(run.config, "tokenizer.model") or "tokenizer"
            raise ConfigError(
                f"{run.weights_path()}: the tokenizer ({name}, {vocab} tokens) does not fit the checkpoint ({k}: {tuple(v.shape)} vs "
                f"{tuple(own[k].shape)}); use the run's own tokenizer"
            )


def find_run(path: str | Path) -> tuple[Path, Path | None]:
    """``(run_dir, checkpoint file or None)`` for a run/model dir or a weights file inside one
    (``<run>/model.pt``, ``<run>/checkpoints/checkpoint-N.pt``, ``<dir>/model.safetensors``)."""
    p = Path(path)
    if p.is_file():
        run = p.parent
        if run.name == "checkpoints" and not _config_file(run):
            run = run.parent
        return run, p
    if not p.is_dir():
        raise ConfigError(f"{p}: no such run directory or checkpoint file")
    return p, None


def _config_file(run: Path) -> Path | None:
    for name in ("config.yaml", "config.json"):
        if (run / name).is_file():
            return run / name
    return None


def _stored_config(ckpt: Path | None) -> dict[str, Any] | None:
    """The ``config`` a toolkit ``model.pt``/checkpoint stores (for a lone weights file)."""
    if ckpt is None or ckpt.suffix != ".pt":
        return None
    from toolkit.weights import load_weights_only

    state = load_weights_only(ckpt)
    cfg = state.get("config") if isinstance(state, dict) else None
    return copy.deepcopy(cfg) if isinstance(cfg, dict) else None


def _locate_run(path: str | Path, checkpoint: str | Path | None) -> Run:
    """The run at ``path`` (dir, config file, weights, ``run.json``, origin), configs not read."""
    run_dir, found_ckpt = find_run(path)
    ckpt = Path(checkpoint) if checkpoint else found_ckpt
    if ckpt is not None and not ckpt.is_file():
        raise ConfigError(f"checkpoint {ckpt} not found")
    cfg_file = _config_file(run_dir)
    if cfg_file is None and ckpt is None:
        raise ConfigError(
            f"{run_dir}: no config.yaml (training run) or config.json (exported model), and "
            f"no weights file with a stored config; not a run directory"
        )
    info = read_run_info(run_dir)
    info.setdefault("kind", "export" if cfg_file and cfg_file.suffix == ".json" else "run")
    origin = Path(info["origin"]) if info.get("origin") else None
    return Run(run_dir, {}, {}, ckpt, origin, info, config_file=cfg_file)


def _read_own_config(run: Run) -> dict[str, Any]:
    """The run's own config: its ``config.yaml``, its exported ``config.json``, or the config
    stored in a lone toolkit weights file."""
    cfg_file = run.config_file
    if cfg_file is None:
        stored = _stored_config(run.checkpoint)
        if stored is None:
            raise ConfigError(
                f"{run.checkpoint}: a weights file without a toolkit config beside it or inside "
                "it; for an icefall checkpoint give its zipformer/train.py options: "
                "toolkit.load(path, icefall_hparams='hparams.yaml') "
                "(see docs/released_checkpoints.md)"
            )
        return stored
    if cfg_file.suffix == ".json":
        try:
            return json.loads(cfg_file.read_text())
        except ValueError as e:
            raise ConfigError(f"{cfg_file}: not valid JSON ({e})") from e
    return load_config(cfg_file)


def open_run(
    path: str | Path,
    checkpoint: str | Path | None = None,
    configs: list[str | Path] | tuple = (),
    overrides: list[str] | tuple = (),
    icefall_hparams: str | Path | dict | None = None,
    text_tower: str | Path | None = None,
) -> Run:
    """Open a run (see the module docstring) without loading weights yet.

    Args:
        path: run dir, exported model dir, or a weights file inside one.
        checkpoint: a specific weights file (default: :func:`toolkit.weights.weights_file`).
        configs: extra YAML files merged over the run's config (their paths are the user's,
            relative to the cwd).
        overrides: dotted overrides applied last.
        icefall_hparams: for an icefall checkpoint (``.pt`` with a ``model`` key): its
            ``zipformer/train.py`` options (a YAML file or a dict; see :func:`release_run`).
        text_tower: for an Auden CLAP dir without its text tower's tokenizer files: a local
            Hugging Face folder holding them (see :func:`release_run`).
    """
    if icefall_hparams is not None or _is_auden_dir(Path(path)):
        return release_run(path, icefall_hparams, configs, overrides, text_tower)
    run = _locate_run(path, checkpoint)
    own = _read_own_config(run)
    if run.config_file is not None and run.config_file.suffix == ".yaml":
        cfg = load_config([run.config_file, *configs], overrides)  # provenance: file:line
    else:
        cfg = load_over(own, configs, overrides)
    keys = (*FILE_KEYS, *FOLDER_KEYS)
    resolve_paths(cfg, keys, run.locate, reference=own)  # first: compares with own as written
    resolve_paths(own, keys, run.locate)
    run.config, run.own_config = cfg, own
    return run


# --------------------------------------------------------------------------- released models


def _is_auden_dir(p: Path) -> bool:
    """A directory whose ``config.json`` has Auden's ``model_type`` (not a toolkit export)."""
    f = p / "config.json"
    if not p.is_dir() or not f.is_file() or (p / RUN_FILE).is_file():
        return False
    try:
        return "model_type" in json.loads(f.read_text())
    except ValueError:
        return False


def release_run(
    path: str | Path,
    icefall_hparams: str | Path | dict | None = None,
    configs: list[str | Path] | tuple = (),
    overrides: list[str] | tuple = (),
    text_tower: str | Path | None = None,
) -> Run:
    """A released model as a :class:`Run`.

    * An Auden model directory: ``config.json`` with ``model_type: zipformer`` and its weights
      (``model.safetensors``, ``pretrained.pt`` or ``pytorch_model.bin``): encoder only
      (``frontend`` + ``encoder``).
    * An Auden CLAP directory (``model_type: clap``): the Zipformer audio tower, the Hugging Face
      text tower (built from its config; the tokenizer files from the directory, or from the
      local folder ``text_tower``), the projections and the fixed temperature, as the
      ``clap_release`` objective (:mod:`toolkit.objectives.clap_release`).
    * An icefall checkpoint (``pretrained.pt``, ``epoch-N.pt``: ``{"model": state_dict}``) with
      ``icefall_hparams``: the ``zipformer/train.py`` options it was trained with (a YAML file
      of option values such as ``encoder_dim: 192,256,384,512,384,256``, or a dict).

    The encoder config comes from :mod:`toolkit.encoders.zipformer_release`; the frontend is
    the fbank those models take (80 bins, no normalisation). The weights load strictly.
    """
    import yaml

    from toolkit.encoders.zipformer_release import (
        auden_encoder_config,
        icefall_encoder_config,
        release_frontend_config,
    )

    p = Path(path)
    if icefall_hparams is None:
        cfg_file = p / "config.json"
        try:
            cj = json.loads(cfg_file.read_text())
        except (OSError, ValueError) as e:
            raise ConfigError(f"{cfg_file}: cannot read ({e})") from e
        from toolkit.objectives.clap_release import auden_clap_config, is_clap_config

        if is_clap_config(cj):
            own = {**auden_clap_config(cj, p, text_tower), "data": {"sampling_rate": 16000}}
            weights = weights_file(p)
            info = {"kind": "auden-clap", "release_config": cj}
            cfg = load_over(own, configs, overrides)
            return Run(p, cfg, copy.deepcopy(own), weights, None, info, config_file=cfg_file)
        if cj.get("model_type") != "zipformer":
            raise ConfigError(
                f"{cfg_file}: model_type {cj.get('model_type')!r} is not supported (supported: "
                "Auden 'zipformer' encoders and 'clap' models)"
            )
        encoder, frontend = auden_encoder_config(cj), release_frontend_config(cj)
        kind, run_dir = "auden", p
        weights = weights_file(p)
    else:
        if isinstance(icefall_hparams, dict):
            hp, cfg_file = dict(icefall_hparams), None
        else:
            cfg_file = Path(icefall_hparams)
            if not cfg_file.is_file():
                raise ConfigError(f"icefall_hparams: {cfg_file}: no such file")
            hp = yaml.safe_load(cfg_file.read_text()) or {}
            if not isinstance(hp, dict):
                raise ConfigError(f"{cfg_file}: expected a mapping of icefall options")
        encoder, frontend, kind = icefall_encoder_config(hp), release_frontend_config(hp), "icefall"
        weights = p if p.is_file() else weights_file(p)
        run_dir = weights.parent
    own = {"frontend": frontend, "encoder": encoder, "data": {"sampling_rate": 16000}}
    cfg = load_over(own, configs, overrides)
    return Run(
        run_dir, cfg, copy.deepcopy(own), weights, None, {"kind": kind}, config_file=cfg_file
    )


# --------------------------------------------------------------------------- export


def _step_of_weights(path: Path) -> int | None:
    if path.suffix != ".pt":
        return None
    from toolkit.weights import load_weights_only

    state = load_weights_only(path)
    step = state.get("step") if isinstance(state, dict) else None
    return int(step) if isinstance(step, int) else None


def model_card(run: Run, step: int | None) -> str:
    """``README.md`` of an exported model: what it is, how it was trained, its results."""
    cfg = run.own_config
    obj = (cfg.get("objective") or {}).get("name", "?")
    enc = cfg.get("encoder") or {}
    enc_text = ", ".join(f"{k}={v}" for k, v in enc.items() if k not in ("init_from",))
    train = cfg.get("data", {}).get("train")
    lines = [
        f"# {run.dir.name}",
        "",
        f"An audio encoder pretrained with the `{obj}` objective by this toolkit, exported by "
        "`toolkit-export`. Load it with `toolkit.load(<this dir>)` (Python) or pass this "
        "directory wherever a run directory is taken (`toolkit-evaluate --exp-dir`, "
        "`toolkit-extract --run-dir`, `encoder.init_from`).",
        "",
        "| | |",
        "|---|---|",
        f"| objective | `{obj}` |",
        f"| encoder | `{enc_text}` |",
        f"| frontend | `{(cfg.get('frontend') or {}).get('name', '?')}` |",
        f"| training steps | {step if step is not None else 'unknown'} |",
        f"| training data | `{train}` |",
        f"| seed | {cfg.get('seed')} |",
        f"| exported from | `{run.dir}` (`{run.weights_path().name}`) |",
        "",
        "Files: `config.json` (the resolved training config), `model.safetensors` (weights; "
        "the EMA weights when the run kept them), `run.json` (the files the model needs, "
        "relative to this directory), and those files (feature statistics, tokenizer).",
    ]
    results = run.dir / "eval" / "results.md"
    if results.is_file():
        body = results.read_text().split("\n", 1)[-1].strip()  # drop the results title
        lines += ["", "## Evaluation (frozen encoder, from the run's `eval/results.md`)", "", body]
    else:
        lines += ["", "No evaluation results were found in the run (`eval/results.md`)."]
    return "\n".join(lines) + "\n"


def export_run(run: Run, out_dir: str | Path) -> Path:
    """Write ``out_dir``: ``config.json``, ``model.safetensors``, ``run.json``, the run's files
    (feature statistics, tokenizer) and a ``README.md`` model card. The directory opens with
    :func:`open_run` anywhere and gives the run's outputs exactly."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out}: exists and is not empty; export into a new directory")
    for key in (*FILE_KEYS, *FOLDER_KEYS):
        run.require(key.split(".")[0])
    tmp = out.with_name(out.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    cfg = copy.deepcopy(run.own_config)
    files: dict[str, str] = {}
    for key in FILE_KEYS:
        src = get_key(run.own_config, key)
        if src:
            name = _file_name(key, src, files)
            shutil.copyfile(src, tmp / name)
            set_key(cfg, key, name)
            files[key] = name
    folders = {k: get_key(run.own_config, k) for k in FOLDER_KEYS if get_key(run.own_config, k)}
    weights = {k: v.detach().clone().contiguous() for k, v in run.weights().items()}
    save_file(weights, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    (tmp / "config.json").write_text(json.dumps(to_plain(cfg), indent=2) + "\n")
    step = _step_of_weights(run.weights_path())
    info: dict[str, Any] = {"format": RUN_FORMAT, "files": files, "step": step}
    if folders:
        info["folders"] = folders
    info["exported_from"] = str(run.dir.resolve())
    (tmp / RUN_FILE).write_text(json.dumps(info, indent=2) + "\n")
    (tmp / "README.md").write_text(model_card(run, step))
    if out.exists():
        out.rmdir()
    tmp.replace(out)
    return out
