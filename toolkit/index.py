"""A text-to-audio search index over a folder: incremental, exact cosine search on CPU.

The index stores one embedding per audio file; how embeddings are computed is the caller's
business (:meth:`AudioIndex.update` takes an ``embed_fn``). Queries (e.g. text embeddings of
the same model) are matched by exact inner product, i.e. cosine similarity of L2-normalised
vectors.

On-disk format (version 1), in the index directory:

* ``vectors.npy`` — ``(N, D)`` float32, C order, one L2-normalised row per indexed file; row
  ``i`` belongs to line ``i`` of ``items.tsv``. Rows are sorted by path.
* ``items.tsv`` — UTF-8, tab-separated, header ``path\\tsize\\tmtime_ns\\tduration``, then one
  line per row of ``vectors.npy``: the absolute path, its size in bytes and ``st_mtime_ns`` when
  it was embedded, and its duration in seconds (empty when unknown). Backslash, tab, newline and
  carriage return in paths are written ``\\\\``, ``\\t``, ``\\n``, ``\\r``.
* ``index.json`` — ``format`` (``"toolkit-audio-index"``), ``version``, ``dim``, ``model_id``,
  ``created`` / ``updated`` (UTC, ISO 8601), ``meta`` (the caller's dict), ``counts``
  (``items``, ``skipped``), ``items_sha256`` (of ``items.tsv``, to detect damage) and
  ``skipped``: ``{path: {"reason", "size", "mtime_ns"}}`` for files ``embed_fn`` could not read.
* ``update.lock``, ``swap.lock`` — empty files for ``flock``: one updater at a time; readers
  wait only while an update swaps the files in.

**Incremental rule.** A file is keyed by its absolute path (the scanned folder resolved, the
names below it as found) and is (re-)embedded when it is new or its ``(size, mtime_ns)``
differs from the stored one. Entries under the scanned folder whose file disappeared are
dropped; entries of other folders are kept. A skipped file is retried only once its size or
mtime changes.

**Crash safety.** An update writes the three files into ``.update-tmp-<pid>/``, renames that
directory to ``.update-ready/`` (the commit point), then moves the files into place (index.json
last) and removes it. A crash before the commit leaves the previous index untouched (the
temporary directory is removed by the next update); a crash after it is rolled forward by the
next :meth:`AudioIndex.open`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

try:  # the corpus preparation's list, so that both see the same audio files
    from toolkit.data.prepare.common import AUDIO_EXTENSIONS as _PREPARE_EXTENSIONS
except ImportError:  # pragma: no cover - prepare stack unavailable
    _PREPARE_EXTENSIONS = ()

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "AUDIO_EXTENSIONS",
    "FAISS_AUTO_MIN_ITEMS",
    "AudioIndex",
    "IndexFormatError",
    "SearchHit",
    "UpdateReport",
    "faiss_available",
    "list_audio_files",
]

AUDIO_EXTENSIONS: tuple[str, ...] = tuple(
    dict.fromkeys(
        (*_PREPARE_EXTENSIONS, ".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a")
        + (".aac", ".aiff", ".aif", ".au", ".wma")
    )
)
"""Lower-case file suffixes taken for audio (the prepare list plus ``.wma``)."""

FORMAT = "toolkit-audio-index"
FORMAT_VERSION = 1
FAISS_AUTO_MIN_ITEMS = 10_000_000
"""``backend="auto"`` uses faiss from this many indexed vectors on (when importable). Set high on
purpose: on the 2-core reference machine faiss-cpu 1.15 ``IndexFlatIP`` was 2-3x *slower* than
the numpy path at 100k and 1M vectors (bench/search_latency.py, docs/search.md)."""

_HEADER = ("path", "size", "mtime_ns", "duration")
_READY = ".update-ready"
_TMP_PREFIX = ".update-tmp-"
_UPDATE_LOCK = "update.lock"  # held by an updater for its whole run
_SWAP_LOCK = "swap.lock"  # exclusive while files are swapped in, shared while a reader loads
_FILES = ("vectors.npy", "items.tsv", "index.json")  # the order they are swapped in
_COPY_ROWS = 32768  # rows per copy step when assembling vectors.npy
_SCORE_BUDGET = 1 << 25  # float32 scores held at once by a batched numpy search (128 MiB)

EmbedFn = Callable[[list[Path]], tuple[Any, ...]]


class IndexFormatError(ValueError):
    """The directory is not an audio index, or its files are damaged or inconsistent."""


@dataclass
class SearchHit:
    """One result: ``path`` (absolute), ``score`` (cosine, in [-1, 1]), ``rank`` (1 = best),
    ``duration`` (seconds, ``None`` when unknown)."""

    path: str
    score: float
    rank: int
    duration: float | None = None


@dataclass
class UpdateReport:
    """What one :meth:`AudioIndex.update` did, in files.

    ``added``: embedded for the first time; ``updated``: re-embedded because they changed;
    ``removed``: entries dropped because the file is gone (indexed or skipped ones);
    ``unchanged``: indexed and untouched; ``skipped``: ``{path: reason}`` of the files
    ``embed_fn`` could not read in this update (a changed file that fails loses its old
    entry); ``still_skipped``: earlier skipped files left alone because they did not change.
    """

    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    skipped: dict[str, str] = field(default_factory=dict)
    still_skipped: int = 0


def faiss_available() -> bool:
    """Whether ``import faiss`` works (faiss-cpu is optional)."""
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def list_audio_files(root: str | Path) -> list[Path]:
    """Audio files under ``root`` (recursive; :data:`AUDIO_EXTENSIONS`, any case), sorted.

    Hidden directories and files (name starting with ``.``) are skipped; symlinked directories
    are followed, each real directory once (no loops). Paths are ``root`` joined with the names
    found (``root`` as given: pass an absolute one for absolute paths).
    """
    root = Path(root)
    if not root.is_dir():
        raise NotADirectoryError(f"not a directory: {root}")
    seen: set[tuple[int, int]] = set()
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        st = os.stat(dirpath)
        if (st.st_dev, st.st_ino) in seen:
            dirnames[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if name.startswith(".") or os.path.splitext(name)[1].lower() not in AUDIO_EXTENSIONS:
                continue
            path = os.path.join(dirpath, name)
            if os.path.isfile(path):  # follows file symlinks; drops dangling ones
                out.append(Path(path))
    out.sort(key=str)
    return out


# --------------------------------------------------------------------------- items.tsv


def _escape(path: str) -> str:
    return path.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text
    out, i = [], 0
    table = {"\\": "\\", "t": "\t", "n": "\n", "r": "\r"}
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text) and text[i + 1] in table:
            out.append(table[text[i + 1]])
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


@dataclass
class _Items:
    """The rows of ``items.tsv``: paths (sorted) and ``(N,)`` int64 size / mtime_ns, float64
    duration in seconds (NaN = unknown)."""

    paths: list[str]
    size: np.ndarray
    mtime_ns: np.ndarray
    duration: np.ndarray

    @classmethod
    def empty(cls) -> _Items:
        return cls([], np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64))

    def text(self) -> str:
        lines = ["\t".join(_HEADER)]
        for p, s, m, d in zip(
            self.paths, self.size.tolist(), self.mtime_ns.tolist(), self.duration.tolist()
        ):
            lines.append(f"{_escape(p)}\t{s}\t{m}\t{'' if math.isnan(d) else repr(d)}")
        return "\n".join(lines) + "\n"

    @classmethod
    def parse(cls, text: str, where: Path) -> _Items:
        lines = text.split("\n")
        if not lines or lines[0].split("\t") != list(_HEADER):
            raise IndexFormatError(f"damaged audio index at {where}: bad items.tsv header")
        if lines[-1] == "":
            lines.pop()
        paths, size, mtime, dur = [], [], [], []
        for n, line in enumerate(lines[1:], start=2):
            parts = line.split("\t")
            try:
                if len(parts) != 4:
                    raise ValueError(f"{len(parts)} fields")
                paths.append(_unescape(parts[0]))
                size.append(int(parts[1]))
                mtime.append(int(parts[2]))
                dur.append(float(parts[3]) if parts[3] else math.nan)
            except ValueError as e:
                raise IndexFormatError(
                    f"damaged audio index at {where}: items.tsv line {n}: {e}"
                ) from None
        if any(a >= b for a, b in zip(paths, paths[1:])):
            raise IndexFormatError(
                f"damaged audio index at {where}: items.tsv paths are not sorted and unique"
            )
        return cls(
            paths,
            np.asarray(size, np.int64),
            np.asarray(mtime, np.int64),
            np.asarray(dur, np.float64),
        )


# --------------------------------------------------------------------------- file helpers


def _fsync_write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@contextlib.contextmanager
def _flock(path: Path, exclusive: bool, blocking: bool = True) -> Iterator[None]:
    """``flock`` on the file ``path`` (created for an exclusive lock). A shared lock is skipped
    where the file cannot be opened (read-only index); no-op on non-POSIX systems."""
    if fcntl is None:
        yield
        return
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT if exclusive else os.O_RDONLY, 0o644)
    except OSError:
        if exclusive:
            raise
        yield
        return
    try:
        flags = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | (0 if blocking else fcntl.LOCK_NB)
        try:
            fcntl.flock(fd, flags)
        except BlockingIOError:
            raise RuntimeError(
                f"audio index {path.parent} is being updated by another process"
            ) from None
        yield
    finally:
        os.close(fd)  # releases the lock


def _roll_forward(root: Path) -> None:
    """Finish a committed update (``.update-ready/`` present): move its files into place, under
    the exclusive swap lock (readers hold it shared while they load)."""
    if not (root / _READY).is_dir():
        return
    with _flock(root / _SWAP_LOCK, exclusive=True):
        ready = root / _READY
        if not ready.is_dir():
            return
        for name in _FILES:
            if (ready / name).exists():
                os.replace(ready / name, root / name)
        _fsync_dir(root)
        shutil.rmtree(ready, ignore_errors=True)


# --------------------------------------------------------------------------- the index


class AudioIndex:
    """An embedding index of audio files, stored in the directory ``root`` (see the module doc).

    ``paths`` (list of N absolute paths), ``vectors`` (``(N, D)`` float32, memory-mapped),
    ``model_id``, ``dim`` (D), ``meta`` and ``skipped`` (``{path: reason}``) describe it;
    :meth:`update` brings it in line with a folder, :meth:`search` queries it.
    """

    def __init__(self, root: str | Path) -> None:
        """Load the index in ``root``; same as :meth:`open`."""
        self.root = Path(root)
        self._faiss: Any = None
        self._load()

    # ---------------------------------------------------------------- creation / loading

    @classmethod
    def create(
        cls,
        root: str | Path,
        dim: int,
        model_id: str,
        meta: dict | None = None,
        *,
        exist_ok: bool = False,
    ) -> AudioIndex:
        """Create an empty index of ``dim``-dimensional vectors made by ``model_id`` in ``root``.

        ``root`` may exist if it holds no index. With ``exist_ok``, an existing index is opened
        instead, provided its ``dim`` and ``model_id`` match (``ValueError`` naming both if not).
        """
        root = Path(root)
        if not isinstance(dim, int) or dim <= 0:
            raise ValueError(f"dim must be a positive int, got {dim!r}")
        if (root / "index.json").exists() or (root / _READY).exists():
            if not exist_ok:
                raise FileExistsError(f"an audio index already exists in {root}")
            index = cls.open(root)
            index._check_model(model_id)
            if index.dim != dim:
                raise ValueError(
                    f"audio index {root} holds {index.dim}-dimensional vectors, not {dim}"
                )
            return index
        root.mkdir(parents=True, exist_ok=True)
        now = _now()
        info = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "dim": dim,
            "model_id": str(model_id),
            "created": now,
            "updated": now,
            "meta": dict(meta or {}),
        }
        with _flock(root / _UPDATE_LOCK, exclusive=True, blocking=False):
            _commit(root, info, _Items.empty(), np.zeros((0, dim), np.float32), {})
        return cls(root)

    @classmethod
    def open(cls, root: str | Path) -> AudioIndex:
        """Open the index in ``root``; :class:`IndexFormatError` (naming ``root``) if there is
        none or it is damaged. Finishes an update that was committed but not swapped in."""
        return cls(root)

    def _load(self) -> None:
        root = self.root
        if (root / _READY).is_dir():
            try:
                _roll_forward(root)
            except OSError as e:
                raise IndexFormatError(
                    f"audio index at {root} has a committed update that could not be finished: {e}"
                ) from e
        if not (root / "index.json").is_file():
            what = "no such directory" if not root.is_dir() else "no index.json"
            raise IndexFormatError(f"not an audio index: {root} ({what})")
        with _flock(root / _SWAP_LOCK, exclusive=False):
            try:
                info = json.loads((root / "index.json").read_text(encoding="utf-8"))
                items_bytes = (root / "items.tsv").read_bytes()
                vectors = _load_vectors(root / "vectors.npy")
            except (OSError, ValueError, UnicodeDecodeError) as e:
                raise IndexFormatError(f"damaged audio index at {root}: {e}") from e
        if not isinstance(info, dict) or info.get("format") != FORMAT:
            raise IndexFormatError(f"not an audio index: {root} (index.json format)")
        if int(info.get("version", 0)) > FORMAT_VERSION:
            raise IndexFormatError(
                f"audio index at {root} has format version {info.get('version')}; this toolkit "
                f"reads up to {FORMAT_VERSION}"
            )
        if info.get("items_sha256") != hashlib.sha256(items_bytes).hexdigest():
            raise IndexFormatError(
                f"damaged audio index at {root}: items.tsv does not match index.json"
            )
        items = _Items.parse(items_bytes.decode("utf-8"), root)
        if vectors.shape != (len(items.paths), int(info["dim"])):
            raise IndexFormatError(
                f"damaged audio index at {root}: vectors.npy is {vectors.shape}, items.tsv has "
                f"{len(items.paths)} rows of dim {info['dim']}"
            )
        self._info = info
        self._items = items
        self._vectors = vectors
        self._faiss = None

    # ---------------------------------------------------------------- properties

    def __len__(self) -> int:
        return len(self._items.paths)

    def __repr__(self) -> str:
        return f"AudioIndex({str(self.root)!r}, items={len(self)}, dim={self.dim}, model_id={self.model_id!r})"

    @property
    def paths(self) -> list[str]:
        """The N indexed absolute paths, sorted; ``paths[i]`` is row ``i`` of :attr:`vectors`."""
        return self._items.paths

    @property
    def vectors(self) -> np.ndarray:
        """``(N, D)`` float32, memory-mapped read-only."""
        return self._vectors

    @property
    def durations(self) -> list[float | None]:
        """Per-path duration in seconds, ``None`` when unknown."""
        return [None if math.isnan(d) else d for d in self._items.duration.tolist()]

    @property
    def dim(self) -> int:
        return int(self._info["dim"])

    @property
    def model_id(self) -> str:
        return str(self._info["model_id"])

    @property
    def meta(self) -> dict:
        return dict(self._info.get("meta") or {})

    @property
    def info(self) -> dict:
        """A copy of ``index.json``."""
        return json.loads(json.dumps(self._info))

    @property
    def skipped(self) -> dict[str, str]:
        """``{path: reason}`` of the files ``embed_fn`` could not read."""
        return {p: v["reason"] for p, v in (self._info.get("skipped") or {}).items()}

    def _check_model(self, model_id: str | None) -> None:
        if model_id is not None and str(model_id) != self.model_id:
            raise ValueError(
                f"audio index {self.root} was built with model {self.model_id!r}; "
                f"refusing to mix in vectors of model {model_id!r} (use a new index)"
            )

    # ---------------------------------------------------------------- update

    def update(
        self,
        folder: str | Path,
        embed_fn: EmbedFn,
        batch_files: int = 64,
        progress: bool = True,
        *,
        model_id: str | None = None,
        checkpoint_s: float | None = None,
    ) -> UpdateReport:
        """Bring the entries under ``folder`` in line with its audio files.

        ``embed_fn(paths)`` gets up to ``batch_files`` paths and returns ``(vectors,
        failures)`` or ``(vectors, failures, durations)``: ``vectors`` ``(n_ok, D)`` float32
        L2-normalised rows for the paths it could read, in order; ``failures`` ``{str(path):
        reason}`` for the others; ``durations`` ``(n_ok,)`` seconds (optional). Rows are
        re-normalised here; a non-finite row raises.

        Only new or changed files are embedded (see the module doc). ``model_id``, if given,
        must be the index's. ``checkpoint_s``: also commit every that many seconds of embedding
        (a long update then keeps its progress if killed); by default only once, at the end.
        Nothing is written when nothing changed.
        """
        self._check_model(model_id)
        if batch_files < 1:
            raise ValueError(f"batch_files must be >= 1, got {batch_files}")
        base = Path(folder).resolve()
        if not base.is_dir():
            raise NotADirectoryError(f"not a directory: {folder}")
        with _flock(self.root / _UPDATE_LOCK, exclusive=True, blocking=False):
            _roll_forward(self.root)
            for stale in self.root.glob(_TMP_PREFIX + "*"):
                shutil.rmtree(stale, ignore_errors=True)
            self._load()
            return self._update_locked(base, embed_fn, batch_files, progress, checkpoint_s)

    def _update_locked(
        self,
        base: Path,
        embed_fn: EmbedFn,
        batch_files: int,
        progress: bool,
        checkpoint_s: float | None,
    ) -> UpdateReport:
        from tqdm import tqdm

        prefix = str(base).rstrip(os.sep) + os.sep
        scan: dict[str, tuple[int, int]] = {}
        for p in list_audio_files(base):
            try:
                st = p.stat()
            except OSError:
                continue  # vanished since the listing
            scan[str(p)] = (st.st_size, st.st_mtime_ns)

        old = self._items
        old_row = {p: i for i, p in enumerate(old.paths)}
        old_skipped: dict[str, dict] = dict(self._info.get("skipped") or {})
        report = UpdateReport()
        removed = {p for p in old.paths if p.startswith(prefix) and p not in scan}
        removed |= {p for p in old_skipped if p.startswith(prefix) and p not in scan}
        report.removed = len(removed)
        todo: list[tuple[str, int, int]] = []
        for p, (size, mtime) in scan.items():
            i = old_row.get(p)
            if i is not None and (old.size[i], old.mtime_ns[i]) == (size, mtime):
                report.unchanged += 1
                continue
            s = old_skipped.get(p)
            if i is None and s is not None and (s.get("size"), s.get("mtime_ns")) == (size, mtime):
                report.still_skipped += 1
                continue
            todo.append((p, size, mtime))
        if not todo and not removed:
            return report

        dim = self.dim
        new_meta: list[tuple[str, int, int, float]] = []
        new_rows: list[np.ndarray] = []
        failed: dict[str, dict] = {}

        def flush() -> None:
            vec = np.concatenate(new_rows) if new_rows else np.zeros((0, dim), np.float32)
            self._commit_merge(removed, new_meta, vec, failed)
            new_meta.clear()
            new_rows.clear()
            failed.clear()

        last = time.monotonic()
        with tqdm(total=len(todo), unit="file", disable=not progress, desc="embedding") as bar:
            for start in range(0, len(todo), batch_files):
                batch = todo[start : start + batch_files]
                out = embed_fn([Path(p) for p, _, _ in batch])
                vec, fails, durs = _check_embed_output(out, [p for p, _, _ in batch], dim)
                ok = [b for b in batch if b[0] not in fails]
                for (p, size, mtime), d in zip(ok, durs):
                    new_meta.append((p, size, mtime, d))
                    if p in old_row:
                        report.updated += 1
                    else:
                        report.added += 1
                new_rows.append(vec)
                for p, size, mtime in batch:
                    if p in fails:
                        failed[p] = {"reason": fails[p], "size": size, "mtime_ns": mtime}
                        report.skipped[p] = fails[p]
                bar.update(len(batch))
                if checkpoint_s is not None and time.monotonic() - last >= checkpoint_s:
                    flush()
                    last = time.monotonic()
        flush()
        return report

    def _commit_merge(
        self,
        removed: set[str],
        new_meta: list[tuple[str, int, int, float]],
        new_vec: np.ndarray,
        failed: dict[str, dict],
    ) -> None:
        """Commit (old entries − removed − re-done) + ``new_meta``/``new_vec`` rows, skipped
        entries updated with ``failed``; reload."""
        old = self._items
        redo = {m[0] for m in new_meta} | set(failed)
        keep = [i for i, p in enumerate(old.paths) if p not in removed and p not in redo]
        # (path, source, row): source 0 = old vectors, 1 = new rows
        rows = [(old.paths[i], 0, i) for i in keep] + [(m[0], 1, j) for j, m in enumerate(new_meta)]
        rows.sort(key=lambda r: r[0])
        items = _Items(
            [r[0] for r in rows],
            np.asarray(
                [old.size[r[2]] if r[1] == 0 else new_meta[r[2]][1] for r in rows], np.int64
            ),
            np.asarray(
                [old.mtime_ns[r[2]] if r[1] == 0 else new_meta[r[2]][2] for r in rows], np.int64
            ),
            np.asarray(
                [old.duration[r[2]] if r[1] == 0 else new_meta[r[2]][3] for r in rows],
                np.float64,
            ),
        )
        src = np.asarray([r[1] for r in rows], np.int8)
        idx = np.asarray([r[2] for r in rows], np.int64)
        skipped = {
            p: v
            for p, v in (self._info.get("skipped") or {}).items()
            if p not in removed and p not in redo
        }
        skipped.update(failed)
        skipped = dict(sorted(skipped.items()))
        info = {**self._info, "updated": _now()}

        def fill(out: np.ndarray) -> None:
            for a in range(0, len(rows), _COPY_ROWS):
                s, i = src[a : a + _COPY_ROWS], idx[a : a + _COPY_ROWS]
                block = np.empty((len(s), self.dim), np.float32)
                m = s == 0
                if m.any():
                    block[m] = self._vectors[i[m]]
                if (~m).any():
                    block[~m] = new_vec[i[~m]]
                out[a : a + len(s)] = block

        _commit(self.root, info, items, fill, skipped)
        self._load()

    def _append(
        self,
        paths: Sequence[str],
        vectors: np.ndarray,
        sizes: Sequence[int] | None = None,
        mtime_ns: Sequence[int] | None = None,
        durations: Sequence[float | None] | None = None,
    ) -> None:
        """Add (or replace) entries with given vectors ``(n, D)`` directly, without embedding
        (benchmarks, tests, imports). Sizes / mtimes default to 0 (re-embedded by an update of
        their folder)."""
        n = len(paths)
        vec = _normalise_rows(np.asarray(vectors), self.dim, "vectors")
        if vec.shape[0] != n or len(set(paths)) != n:
            raise ValueError("_append needs one vector per path and unique paths")
        meta = [
            (
                str(paths[j]),
                int(sizes[j]) if sizes is not None else 0,
                int(mtime_ns[j]) if mtime_ns is not None else 0,
                math.nan if durations is None or durations[j] is None else float(durations[j]),
            )
            for j in range(n)
        ]
        with _flock(self.root / _UPDATE_LOCK, exclusive=True, blocking=False):
            self._load()
            self._commit_merge(set(), meta, vec, {})

    # ---------------------------------------------------------------- search

    def search(
        self, query: np.ndarray, k: int = 10, backend: str = "auto"
    ) -> list[SearchHit] | list[list[SearchHit]]:
        """The ``k`` indexed files nearest to ``query`` by cosine (exact inner product).

        ``query``: ``(E,)`` → a list of hits, or ``(Q, E)`` → one list per query; rows should be
        L2-normalised (scores are plain inner products). ``backend``: ``"numpy"`` (exact, BLAS
        on CPU), ``"faiss"`` (faiss-cpu ``IndexFlatIP``; ``ImportError`` if missing) or
        ``"auto"`` (faiss when installed and the index has at least
        :data:`FAISS_AUTO_MIN_ITEMS` vectors, numpy otherwise). Both backends return the same
        hits in the same order: candidates found in float32 are rescored in float64 and sorted
        by (score descending, path ascending).
        """
        q = np.asarray(query)
        single = q.ndim == 1
        q = np.atleast_2d(q)
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise ValueError(
                f"query must be ({self.dim},) or (Q, {self.dim}), got {np.shape(query)}"
            )
        q = np.ascontiguousarray(q, dtype=np.float32)
        if not np.isfinite(q).all():
            raise ValueError("query has non-finite values")
        if backend not in ("auto", "numpy", "faiss"):
            raise ValueError(f"backend must be 'auto', 'numpy' or 'faiss', got {backend!r}")
        if backend == "auto":
            use_faiss = len(self) >= FAISS_AUTO_MIN_ITEMS and faiss_available()
        else:
            use_faiss = backend == "faiss"
        k = min(int(k), len(self))
        if k <= 0:
            hits: list[list[SearchHit]] = [[] for _ in range(len(q))]
        else:
            cands = self._candidates_faiss(q, k) if use_faiss else self._candidates_numpy(q, k)
            hits = [self._rescore(q[j], c, k) for j, c in enumerate(cands)]
        return hits[0] if single else hits

    def _margin(self, q: np.ndarray) -> np.ndarray:
        """Per query, twice a bound on the float32 error of an inner product with a unit row:
        ``D · 2⁻²⁴ · |q| · 1.01`` (Higham's γ_D with Cauchy–Schwarz), plus a floor."""
        return 2.0 * (self.dim * 2.0**-24 * np.linalg.norm(q, axis=1) * 1.01) + 1e-7

    def _candidates_numpy(self, q: np.ndarray, k: int) -> list[np.ndarray]:
        """Rows whose float32 score is within the error margin of each query's k-th best."""
        n = len(self)
        margin = self._margin(q)
        step = max(1, _SCORE_BUDGET // n)
        out: list[np.ndarray] = []
        for a in range(0, len(q), step):
            scores = q[a : a + step] @ self._vectors.T  # (q, N) float32
            kth = np.partition(scores, n - k, axis=1)[:, n - k]
            for j in range(len(scores)):
                out.append(np.flatnonzero(scores[j] >= kth[j] - margin[a + j]))
        return out

    def _faiss_index(self) -> Any:
        if self._faiss is None:
            import faiss

            index = faiss.IndexFlatIP(self.dim)
            index.add(np.ascontiguousarray(self._vectors))
            self._faiss = index
        return self._faiss

    def _candidates_faiss(self, q: np.ndarray, k: int) -> list[np.ndarray]:
        """As :meth:`_candidates_numpy`, from faiss: ``k + 16`` nearest, widened by a range
        search when the margin reaches past them."""
        index = self._faiss_index()
        n = len(self)
        margin = self._margin(q)
        kk = min(n, k + 16)
        scores, ids = index.search(q, kk)
        out: list[np.ndarray] = []
        for j in range(len(q)):
            thr = float(scores[j, k - 1]) - float(margin[j])
            if kk == n or scores[j, kk - 1] < thr:
                out.append(ids[j][scores[j] >= thr].astype(np.int64))
            else:
                _, _, found = index.range_search(q[j : j + 1], np.float32(thr - 1e-7))
                out.append(np.asarray(found, np.int64))
        return out

    def _rescore(self, q: np.ndarray, cand: np.ndarray, k: int) -> list[SearchHit]:
        cand = np.unique(cand)  # ascending row = ascending path
        rows = np.asarray(self._vectors[cand], np.float64)
        exact = (rows * q.astype(np.float64)).sum(axis=1)
        order = np.lexsort((cand, -exact))[:k]
        dur = self._items.duration
        return [
            SearchHit(
                path=self._items.paths[cand[o]],
                score=float(exact[o]),
                rank=r + 1,
                duration=None if math.isnan(dur[cand[o]]) else float(dur[cand[o]]),
            )
            for r, o in enumerate(order)
        ]


# --------------------------------------------------------------------------- helpers


def _load_vectors(path: Path) -> np.ndarray:
    """``vectors.npy`` memory-mapped read-only; must be a C-order 2-D float32 array."""
    try:
        vec = np.load(path, mmap_mode="r")
    except ValueError:  # numpy versions that cannot map an empty array
        vec = np.load(path)
    if vec.dtype != np.float32 or vec.ndim != 2 or not vec.flags.c_contiguous:
        raise ValueError(
            f"vectors.npy must be a C-order 2-D float32 array, got {vec.dtype} {vec.shape}"
        )
    return vec


def _normalise_rows(vec: np.ndarray, dim: int, what: str) -> np.ndarray:
    """``vec`` as ``(n, dim)`` float32 rows of unit norm (zero rows stay zero)."""
    vec = np.asarray(vec, dtype=np.float32)
    if vec.ndim != 2 or vec.shape[1] != dim:
        raise ValueError(f"{what} must be (n, {dim}), got {vec.shape}")
    if not np.isfinite(vec).all():
        raise ValueError(f"{what} has non-finite values")
    norm = np.linalg.norm(vec, axis=1, keepdims=True)
    return np.ascontiguousarray(vec / np.maximum(norm, 1e-12), dtype=np.float32)


def _check_embed_output(
    out: Any, batch: list[str], dim: int
) -> tuple[np.ndarray, dict[str, str], list[float]]:
    """Validate an ``embed_fn`` result for ``batch``; returns (vectors, failures, durations)."""
    if not isinstance(out, tuple) or len(out) not in (2, 3):
        raise TypeError(
            "embed_fn must return (vectors, failures) or (vectors, failures, durations)"
        )
    fails = {str(p): str(r) for p, r in (out[1] or {}).items()}
    unknown = set(fails) - set(batch)
    if unknown:
        raise ValueError(
            f"embed_fn reported failures for paths it was not given: {sorted(unknown)[:3]}"
        )
    n_ok = sum(p not in fails for p in batch)
    vec = np.asarray(out[0], dtype=np.float32)
    if n_ok == 0 and vec.size == 0:
        vec = vec.reshape(0, dim)
    if vec.shape != (n_ok, dim):
        raise ValueError(
            f"embed_fn returned vectors of shape {vec.shape} for {n_ok} readable files of dim {dim}"
        )
    vec = _normalise_rows(vec, dim, "embed_fn vectors")
    if len(out) == 3 and out[2] is not None:
        durs = [math.nan if d is None else float(d) for d in out[2]]
        if len(durs) != n_ok:
            raise ValueError(f"embed_fn returned {len(durs)} durations for {n_ok} files")
    else:
        durs = [math.nan] * n_ok
    return vec, fails, durs


def _commit(
    root: Path,
    info: dict,
    items: _Items,
    vectors: np.ndarray | Callable[[np.ndarray], None],
    skipped: dict[str, dict],
) -> None:
    """Write a whole index state into a temporary directory, commit it by renaming that to
    ``.update-ready`` and swap the files in. ``vectors``: the ``(N, D)`` rows, or a function
    filling the ``(N, D)`` float32 output memmap. The caller holds the exclusive lock."""
    tmp = root / f"{_TMP_PREFIX}{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        n, dim = len(items.paths), int(info["dim"])
        if n == 0:
            np.save(tmp / "vectors.npy", np.zeros((0, dim), np.float32))
        else:
            out = np.lib.format.open_memmap(
                tmp / "vectors.npy", mode="w+", dtype=np.float32, shape=(n, dim)
            )
            if callable(vectors):
                vectors(out)
            else:
                out[:] = vectors
            out.flush()
            del out
        with open(tmp / "vectors.npy", "rb+") as f:
            os.fsync(f.fileno())
        text = items.text().encode("utf-8")
        _fsync_write(tmp / "items.tsv", text)
        info = {
            **info,
            "counts": {"items": n, "skipped": len(skipped)},
            "items_sha256": hashlib.sha256(text).hexdigest(),
            "skipped": skipped,
        }
        _fsync_write(tmp / "index.json", (json.dumps(info, indent=1) + "\n").encode("utf-8"))
        _fsync_dir(tmp)
        os.replace(tmp, root / _READY)  # the commit point
        _fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _roll_forward(root)
