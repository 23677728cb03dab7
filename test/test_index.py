"""toolkit.index: incremental folder index, exact cosine search, crash safety, faiss parity."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from toolkit import index as index_mod
from toolkit.index import (
    AUDIO_EXTENSIONS,
    AudioIndex,
    IndexFormatError,
    SearchHit,
    faiss_available,
    list_audio_files,
)

DIM = 16


class FakeEmbed:
    """Deterministic stand-in for a model: the file bytes hashed into a random unit vector.
    Files whose bytes start with ``BAD`` are unreadable. Records every path it is given."""

    def __init__(self, dim: int = DIM, durations: bool = False) -> None:
        self.dim, self.durations, self.calls = dim, durations, []

    @staticmethod
    def vector(data: bytes, dim: int = DIM) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha256(data).digest()[:8], "little")
        v = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
        return v / np.linalg.norm(v)

    def __call__(self, paths: list[Path]):
        self.calls.extend(str(p) for p in paths)
        rows, fails, durs = [], {}, []
        for p in paths:
            data = p.read_bytes()
            if data.startswith(b"BAD"):
                fails[str(p)] = "cannot decode: not audio"
                continue
            rows.append(self.vector(data, self.dim))
            durs.append(len(data) / 1000.0)
        vec = np.stack(rows) if rows else np.zeros((0, self.dim), np.float32)
        return (vec, fails, durs) if self.durations else (vec, fails)


def write_wav(path: Path, seed: int, seconds: float = 0.05) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    noise = np.random.default_rng(seed).uniform(-0.5, 0.5, int(16000 * seconds))
    sf.write(path, noise.astype(np.float32), 16000)
    return path


def touch(path: Path, delta_ns: int = 2_000_000_000) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + delta_ns))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "audio"
    for i in range(5):
        write_wav(root / f"clip{i}.wav", seed=i)
    write_wav(root / "sub" / "deep.flac", seed=10)
    return root


def new_index(tmp_path: Path, model_id: str = "fake-v1") -> AudioIndex:
    return AudioIndex.create(tmp_path / "index", DIM, model_id, meta={"note": "test"})


# --------------------------------------------------------------------------- listing


def test_list_audio_files(tmp_path: Path) -> None:
    root = tmp_path / "a"
    for name in ("b.wav", "A.FLAC", "x/c.mp3", "x/y/d.Opus", "notes.txt", ".hidden.wav"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"x")
    (root / ".cache").mkdir()
    (root / ".cache" / "e.wav").write_bytes(b"x")
    (root / "x" / "loop").symlink_to(root)  # a symlink loop must not hang or duplicate
    (root / "dangling.wav").symlink_to(root / "missing.wav")
    got = list_audio_files(root)
    assert got == sorted(got, key=str)
    assert [p.relative_to(root).as_posix() for p in got] == [
        "A.FLAC",
        "b.wav",
        "x/c.mp3",
        "x/y/d.Opus",
    ]
    with pytest.raises(NotADirectoryError):
        list_audio_files(root / "b.wav")


def test_audio_extensions_cover_prepare() -> None:
    from toolkit.data.prepare.common import AUDIO_EXTENSIONS as prepare_exts

    assert set(prepare_exts) <= set(AUDIO_EXTENSIONS)
    assert ".wma" in AUDIO_EXTENSIONS and len(set(AUDIO_EXTENSIONS)) == len(AUDIO_EXTENSIONS)


# --------------------------------------------------------------------------- update


def test_incremental_update(tmp_path: Path, folder: Path) -> None:
    index, embed = new_index(tmp_path), FakeEmbed()
    rep = index.update(folder, embed, batch_files=2, progress=False)
    assert (rep.added, rep.updated, rep.removed, rep.unchanged, rep.skipped) == (6, 0, 0, 0, {})
    assert len(index) == 6 and len(embed.calls) == 6
    assert index.paths == sorted(str(p) for p in list_audio_files(folder.resolve()))
    assert all(Path(p).is_absolute() for p in index.paths)
    for p, v in zip(index.paths, index.vectors):
        np.testing.assert_allclose(v, FakeEmbed.vector(Path(p).read_bytes()), atol=1e-6)
    assert isinstance(index.vectors, np.memmap) and index.vectors.dtype == np.float32

    # nothing changed: nothing embedded, nothing written
    stamp = (tmp_path / "index" / "index.json").stat().st_mtime_ns
    embed.calls.clear()
    rep = index.update(folder, embed, progress=False)
    assert embed.calls == [] and rep.unchanged == 6 and rep.added == rep.updated == 0
    assert (tmp_path / "index" / "index.json").stat().st_mtime_ns == stamp

    # touching one file (same bytes, new mtime) re-embeds only it; new content changes its row
    touch(folder / "clip2.wav")
    write_wav(folder / "clip3.wav", seed=99)
    touch(folder / "clip3.wav")
    rep = index.update(folder, embed, progress=False)
    assert sorted(embed.calls) == [str(folder / "clip2.wav"), str(folder / "clip3.wav")]
    assert (rep.added, rep.updated, rep.removed, rep.unchanged) == (0, 2, 0, 4)
    row = index.paths.index(str(folder / "clip3.wav"))
    np.testing.assert_allclose(
        index.vectors[row], FakeEmbed.vector((folder / "clip3.wav").read_bytes()), atol=1e-6
    )

    # deleting one removes it; adding one adds it (and only it is embedded)
    (folder / "clip0.wav").unlink()
    write_wav(folder / "sub" / "new.ogg", seed=7)
    embed.calls.clear()
    rep = index.update(folder, embed, progress=False)
    assert embed.calls == [str(folder / "sub" / "new.ogg")]
    assert (rep.added, rep.updated, rep.removed, rep.unchanged) == (1, 0, 1, 5)
    assert str(folder / "clip0.wav") not in index.paths and len(index) == 6

    # a fresh open sees the same state
    again = AudioIndex.open(tmp_path / "index")
    assert again.paths == index.paths and np.array_equal(again.vectors, index.vectors)
    assert again.model_id == "fake-v1" and again.meta == {"note": "test"} and again.dim == DIM
    info = json.loads((tmp_path / "index" / "index.json").read_text())
    assert info["counts"] == {"items": 6, "skipped": 0} and info["version"] == 1


def test_entries_of_other_folders_are_kept(tmp_path: Path) -> None:
    a = [write_wav(tmp_path / "A" / f"{i}.wav", i) for i in range(3)]
    b = [write_wav(tmp_path / "B" / f"{i}.wav", 10 + i) for i in range(2)]
    index, embed = new_index(tmp_path), FakeEmbed()
    index.update(tmp_path / "A", embed, progress=False)
    index.update(tmp_path / "B", embed, progress=False)
    assert len(index) == 5
    a[0].unlink()
    rep = index.update(tmp_path / "A", embed, progress=False)
    assert rep.removed == 1 and rep.unchanged == 2 and len(index) == 4
    assert all(str(p) in index.paths for p in b)


def test_skipped_files(tmp_path: Path, folder: Path) -> None:
    bad = folder / "broken.wav"
    bad.write_bytes(b"BAD not a wave file")
    index, embed = new_index(tmp_path), FakeEmbed()
    rep = index.update(folder, embed, batch_files=3, progress=False)
    assert rep.added == 6 and rep.skipped == {str(bad): "cannot decode: not audio"}
    assert index.skipped == {str(bad): "cannot decode: not audio"}
    assert str(bad) not in index.paths
    assert json.loads((tmp_path / "index" / "index.json").read_text())["counts"]["skipped"] == 1

    # not retried while unchanged
    embed.calls.clear()
    rep = index.update(folder, embed, progress=False)
    assert embed.calls == [] and rep.still_skipped == 1 and rep.skipped == {}
    assert AudioIndex.open(tmp_path / "index").skipped == {str(bad): "cannot decode: not audio"}

    # retried once changed; now readable: indexed, no longer skipped
    write_wav(bad, seed=42)
    touch(bad)
    rep = index.update(folder, embed, progress=False)
    assert embed.calls == [str(bad)] and rep.added == 1 and index.skipped == {}

    # an indexed file that changes into garbage loses its entry and is skipped
    (folder / "clip1.wav").write_bytes(b"BAD now")
    touch(folder / "clip1.wav")
    rep = index.update(folder, embed, progress=False)
    assert rep.skipped == {str(folder / "clip1.wav"): "cannot decode: not audio"}
    assert str(folder / "clip1.wav") not in index.paths and len(index) == 6

    # a skipped file that disappears is dropped from the skipped list
    (folder / "clip1.wav").unlink()
    rep = index.update(folder, embed, progress=False)
    assert rep.removed == 1 and index.skipped == {}


def test_durations_and_odd_names(tmp_path: Path) -> None:
    odd = write_wav(tmp_path / "A" / "tab\there\\back ünï.wav", 1)
    index, embed = new_index(tmp_path), FakeEmbed(durations=True)
    index.update(tmp_path / "A", embed, progress=False)
    again = AudioIndex.open(tmp_path / "index")
    assert again.paths == [str(odd)]
    assert again.durations == [pytest.approx(odd.stat().st_size / 1000.0)]
    hit = again.search(again.vectors[0], k=1)[0]
    assert hit.path == str(odd) and hit.duration == pytest.approx(odd.stat().st_size / 1000.0)


def test_embed_fn_contract_violations(tmp_path: Path, folder: Path) -> None:
    index = new_index(tmp_path)
    with pytest.raises(ValueError, match="shape"):
        index.update(folder, lambda paths: (np.zeros((1, DIM), np.float32), {}), progress=False)

    def nan_embed(paths):
        return np.full((len(paths), DIM), np.nan, np.float32), {}

    with pytest.raises(ValueError, match="non-finite"):
        index.update(folder, nan_embed, progress=False)
    assert len(AudioIndex.open(tmp_path / "index")) == 0

    def unnormalised(paths):  # rows are re-normalised
        return np.full((len(paths), DIM), 3.0, np.float32), {}

    index.update(folder, unnormalised, progress=False)
    np.testing.assert_allclose(np.linalg.norm(index.vectors, axis=1), 1.0, atol=1e-6)


def test_model_id_mismatch(tmp_path: Path, folder: Path) -> None:
    index = new_index(tmp_path, model_id="model-A")
    index.update(folder, FakeEmbed(), progress=False, model_id="model-A")
    with pytest.raises(ValueError, match="model-A.*model-B"):
        index.update(folder, FakeEmbed(), progress=False, model_id="model-B")
    with pytest.raises(ValueError, match="model-A.*model-B"):
        AudioIndex.create(tmp_path / "index", DIM, "model-B", exist_ok=True)
    with pytest.raises(ValueError, match="dimensional"):
        AudioIndex.create(tmp_path / "index", DIM + 1, "model-A", exist_ok=True)
    with pytest.raises(FileExistsError):
        AudioIndex.create(tmp_path / "index", DIM, "model-A")
    assert len(AudioIndex.create(tmp_path / "index", DIM, "model-A", exist_ok=True)) == 6


def test_open_errors(tmp_path: Path, folder: Path) -> None:
    with pytest.raises(IndexFormatError, match="nowhere"):
        AudioIndex.open(tmp_path / "nowhere")
    (tmp_path / "plain").mkdir()
    with pytest.raises(
        IndexFormatError, match="plain.*not an audio index|not an audio index.*plain"
    ):
        AudioIndex.open(tmp_path / "plain")

    index = new_index(tmp_path)
    index.update(folder, FakeEmbed(), progress=False)
    items = tmp_path / "index" / "items.tsv"
    good = items.read_bytes()
    items.write_bytes(good[: len(good) // 2])
    with pytest.raises(IndexFormatError, match=str(tmp_path / "index")):
        AudioIndex.open(tmp_path / "index")
    items.write_bytes(good)
    np.save(tmp_path / "index" / "vectors.npy", np.zeros((3, DIM), np.float32))
    with pytest.raises(IndexFormatError, match="vectors.npy"):
        AudioIndex.open(tmp_path / "index")
    (tmp_path / "index" / "index.json").write_text("{not json")
    with pytest.raises(IndexFormatError, match="damaged"):
        AudioIndex.open(tmp_path / "index")


def test_concurrent_updates_refused(tmp_path: Path, folder: Path) -> None:
    index = new_index(tmp_path)

    def reentrant(paths):
        AudioIndex.open(tmp_path / "index").update(folder, FakeEmbed(), progress=False)

    with pytest.raises(RuntimeError, match="another process"):
        index.update(folder, reentrant, progress=False)


# --------------------------------------------------------------------------- crash safety


def test_crash_mid_update_keeps_previous_index(tmp_path: Path, folder: Path) -> None:
    index = new_index(tmp_path)
    index.update(folder, FakeEmbed(), progress=False)
    before_paths, before_vec = list(index.paths), np.array(index.vectors)
    for i in range(6):
        write_wav(folder / f"more{i}.wav", seed=100 + i)
    (folder / "clip0.wav").unlink()

    for exc in (RuntimeError("model crashed"), KeyboardInterrupt()):
        embed, n = FakeEmbed(), [0]

        def flaky(paths, embed=embed, n=n, exc=exc):
            n[0] += 1
            if n[0] == 2:
                raise exc
            return embed(paths)

        with pytest.raises(type(exc)):
            index.update(folder, flaky, batch_files=2, progress=False)
        again = AudioIndex.open(tmp_path / "index")
        assert again.paths == before_paths and np.array_equal(again.vectors, before_vec)
        assert not [p for p in (tmp_path / "index").iterdir() if p.name.startswith(".update")]

    rep = AudioIndex.open(tmp_path / "index").update(folder, FakeEmbed(), progress=False)
    assert (rep.added, rep.removed) == (6, 1)


def test_crash_after_commit_rolls_forward(tmp_path: Path, folder: Path, monkeypatch) -> None:
    index = new_index(tmp_path)
    index.update(folder, FakeEmbed(), progress=False)
    write_wav(folder / "late.wav", seed=55)
    real = index_mod._roll_forward

    def crash_when_committed(root: Path) -> None:
        if (root / index_mod._READY).exists():
            raise KeyboardInterrupt  # killed between the commit and the swap
        real(root)

    monkeypatch.setattr(index_mod, "_roll_forward", crash_when_committed)
    with pytest.raises(KeyboardInterrupt):
        index.update(folder, FakeEmbed(), progress=False)
    assert (tmp_path / "index" / index_mod._READY).is_dir()
    monkeypatch.setattr(index_mod, "_roll_forward", real)
    again = AudioIndex.open(tmp_path / "index")  # finishes the committed update
    assert str(folder / "late.wav") in again.paths and len(again) == 7
    assert not (tmp_path / "index" / index_mod._READY).exists()


def test_checkpointed_update_keeps_progress(tmp_path: Path, folder: Path) -> None:
    index, embed, n = new_index(tmp_path), FakeEmbed(), [0]

    def dies_on_third(paths):
        n[0] += 1
        if n[0] == 3:
            raise RuntimeError("killed")
        return embed(paths)

    with pytest.raises(RuntimeError):
        index.update(folder, dies_on_third, batch_files=2, progress=False, checkpoint_s=0.0)
    again = AudioIndex.open(tmp_path / "index")
    assert len(again) == 4  # two committed batches of two
    rep = again.update(folder, FakeEmbed(), progress=False)
    assert (rep.added, rep.unchanged) == (2, 4)


# --------------------------------------------------------------------------- search


def synthetic(tmp_path: Path, n: int, dim: int = DIM, dupes: int = 0, seed: int = 0) -> AudioIndex:
    """An index of ``n`` random unit vectors (paths in shuffled order; ``dupes`` copies of
    row 0 under other names, to exercise ties)."""
    rng = np.random.default_rng(seed)
    vec = rng.standard_normal((n, dim)).astype(np.float32)
    vec[n - dupes :] = vec[0]
    names = [f"/data/{i:05d}.wav" for i in rng.permutation(n)]
    index = AudioIndex.create(tmp_path / f"synth{seed}", dim, "random")
    index._append(names, vec, durations=[1.0] * n)
    return index


def tie_row(index: AudioIndex) -> int:
    """A row whose vector other rows share."""
    _, inv, counts = np.unique(index.vectors, axis=0, return_inverse=True, return_counts=True)
    return int(np.flatnonzero(counts[inv.ravel()] > 1)[0])


def brute_force(index: AudioIndex, q: np.ndarray, k: int) -> list[tuple[str, float]]:
    scores = np.asarray(index.vectors, np.float64) @ q.astype(np.float64)
    order = sorted(range(len(index)), key=lambda i: (-round(scores[i], 9), index.paths[i]))
    return [(index.paths[i], scores[i]) for i in order[:k]]


def test_search_matches_brute_force(tmp_path: Path) -> None:
    index = synthetic(tmp_path, 800, dupes=30)
    rng = np.random.default_rng(5)
    queries = rng.standard_normal((12, DIM)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    queries[0] = index.vectors[tie_row(index)]  # hits the 31 ties
    for q in queries:
        hits = index.search(q, k=40, backend="numpy")
        expect = brute_force(index, q, 40)
        assert [h.path for h in hits] == [p for p, _ in expect]
        np.testing.assert_allclose([h.score for h in hits], [s for _, s in expect], atol=1e-9)
        assert [h.rank for h in hits] == list(range(1, 41))
        assert all(isinstance(h, SearchHit) and h.duration == 1.0 for h in hits)
    tied = index.search(queries[0], k=31)
    assert [h.path for h in tied] == sorted(h.path for h in tied)  # ties by path
    assert len({h.score for h in tied}) == 1


def test_self_query_ranks_first(tmp_path: Path) -> None:
    index = synthetic(tmp_path, 300)
    for i in range(0, 300, 37):
        hit = index.search(np.array(index.vectors[i]), k=3)[0]
        assert hit.path == index.paths[i] and hit.rank == 1
        assert hit.score == pytest.approx(1.0, abs=1e-6)


def test_batch_queries(tmp_path: Path) -> None:
    index = synthetic(tmp_path, 400)
    q = np.array(index.vectors[:7]) + 0.1
    batch = index.search(q, k=5)
    assert isinstance(batch, list) and len(batch) == 7
    assert batch == [index.search(row, k=5) for row in q]
    assert index.search(q[:1], k=5) == [batch[0]]  # (1, E) stays a list of lists


def test_search_edge_cases(tmp_path: Path, monkeypatch) -> None:
    empty = AudioIndex.create(tmp_path / "empty", DIM, "m")
    assert len(empty) == 0 and empty.vectors.shape == (0, DIM)
    assert empty.search(np.ones(DIM, np.float32)) == []
    assert empty.search(np.ones((2, DIM), np.float32)) == [[], []]
    index = synthetic(tmp_path, 20)
    assert len(index.search(np.ones(DIM, np.float32), k=100)) == 20
    with pytest.raises(ValueError, match=str(DIM)):
        index.search(np.ones(DIM + 1, np.float32))
    with pytest.raises(ValueError, match="backend"):
        index.search(np.ones(DIM, np.float32), backend="annoy")
    monkeypatch.setattr(index_mod, "_SCORE_BUDGET", 50)  # query groups of 2
    q = np.random.default_rng(0).standard_normal((5, DIM)).astype(np.float32)
    assert index.search(q, k=4) == [index.search(row, k=4) for row in q]


@pytest.mark.skipif(not faiss_available(), reason="faiss-cpu not installed")
def test_faiss_parity(tmp_path: Path, monkeypatch) -> None:
    index = synthetic(tmp_path, 3000, dim=48, dupes=40, seed=1)
    rng = np.random.default_rng(2)
    q = rng.standard_normal((9, 48)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    q[0] = index.vectors[17]  # itself first
    q[1] = index.vectors[tie_row(index)]  # 41 exact ties
    for k in (1, 10, 41, 3000):  # 41 > k + 16 ties: the range-search widening
        assert index.search(q, k=k, backend="faiss") == index.search(q, k=k, backend="numpy")
    monkeypatch.setattr(index_mod, "FAISS_AUTO_MIN_ITEMS", 10)
    assert index.search(q, k=5, backend="auto") == index.search(q, k=5, backend="numpy")


def test_faiss_missing_is_clear(tmp_path: Path, monkeypatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_faiss(name, *a, **kw):
        if name == "faiss":
            raise ImportError("No module named 'faiss'")
        return real_import(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", no_faiss)
    index = synthetic(tmp_path, 50)
    monkeypatch.setattr(index_mod, "FAISS_AUTO_MIN_ITEMS", 10)
    q = np.ones(DIM, np.float32) / 4
    assert index.search(q, backend="auto") == index.search(q, backend="numpy")
    with pytest.raises(ImportError):
        index.search(q, backend="faiss")


# --------------------------------------------------------------------------- benchmark


def test_bench_search_latency_quick(tmp_path: Path) -> None:
    from fixtures import run_bench

    out = tmp_path / "rows.json"
    proc = run_bench(
        "search_latency.py", "--quick", "--json", str(out), "--work-dir", str(tmp_path)
    )
    rows = json.loads(out.read_text())["rows"]
    backends = ["numpy"] + (["faiss"] if faiss_available() else [])
    assert [(r["backend"], r["queries"]) for r in rows] == [
        (b, q) for b in backends for q in (1, 16)
    ]
    assert all(r["median_ms"] > 0 and r["n"] == 2000 and r["dim"] == 64 for r in rows)
    assert "| numpy | 2,000 | 64 | 1 |" in proc.stdout
