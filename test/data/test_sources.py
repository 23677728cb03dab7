"""Training sources (toolkit.data.sources / shar / streaming): manifests, Shar directories and
weighted mixes read per (rank, worker) slot; disjoint and complete epochs; exact resume of the
stream; clear errors for bad sources."""

from __future__ import annotations

import gzip
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fixtures import make_tone_corpus
from lhotse import CutSet, MonoCut, Recording

from toolkit.config import ConfigError
from toolkit.data.dataset import CaptionDataset
from toolkit.data.sources import SlotCuts, open_cuts, parse_sources, slot_units
from toolkit.data.streaming import SlotBatches, StreamLoader, train_loader


def write_shar(cuts: CutSet, out: Path, shard_size: int) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    cuts.to_shar(out, fields={"recording": "flac"}, shard_size=shard_size)
    return out


@pytest.fixture(scope="module")
def corpora(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sources")
    a = make_tone_corpus(root / "a", 30, seed=0, prefix="a")
    b = make_tone_corpus(root / "b", 20, seed=1, prefix="b")
    out = {"root": root}
    out["shar_a"] = write_shar(a, root / "shar_a", shard_size=4)  # 8 shards (not 4k)
    out["shar_b"] = write_shar(b, root / "shar_b", shard_size=7)  # 3 shards < 4 slots
    out["jsonl_b"] = root / "b.jsonl.gz"
    b.to_file(out["jsonl_b"])
    return out


def epoch_ids(value, world: int, workers: int, epoch: int = 0, seed: int = 3) -> list[list[str]]:
    """Per rank, the cut ids of one epoch in the order the trainer would see them."""
    per_rank = []
    for rank in range(world):
        loader = train_loader(
            value,
            CaptionDataset(None, max_clip_duration=None),
            max_duration=4.0,
            rank=rank,
            world_size=world,
            num_workers=workers,
            seed=seed,
        )
        loader.set_epoch(epoch)
        per_rank.append([i for b in loader for i in b["cut_ids"]])
    return per_rank


class _ParentTagged(CaptionDataset):
    """Batches that carry the pid of the process that started the worker building them."""

    def __getitem__(self, cuts):
        return {**super().__getitem__(cuts), "parent_pid": os.getppid()}


def test_workers_start_method_keeps_the_order(corpora):
    """``forkserver`` workers are not children of the training process (so its heap is not
    shared copy-on-write with them); the default ``fork`` workers are; both give the same
    batches."""

    def batches(**how) -> list[dict]:
        loader = train_loader(
            str(corpora["shar_a"]),
            _ParentTagged(None, max_clip_duration=None),
            max_duration=4.0,
            num_workers=2,
            seed=3,
            **how,
        )
        loader.set_epoch(1)
        return list(loader)

    served, forked = batches(worker_start="forkserver"), batches()
    assert [b["cut_ids"] for b in served] == [b["cut_ids"] for b in forked]
    assert {b["parent_pid"] for b in forked} == {os.getpid()}
    assert os.getpid() not in {b["parent_pid"] for b in served}


_KILLED_MID_EPOCH = """
import os, signal, sys
from pathlib import Path
from toolkit.data.dataset import CaptionDataset
from toolkit.data.streaming import train_loader

def descendants():
    out, todo = [], [os.getpid()]
    while todo:
        for task in Path(f"/proc/{todo.pop()}/task").iterdir():
            kids = [int(x) for x in (task / "children").read_text().split()]
            out += kids
            todo += kids
    return out

loader = train_loader(sys.argv[1], CaptionDataset(None, max_clip_duration=None), 4.0,
                      num_workers=2, seed=3, worker_start="forkserver")
loader.set_epoch(0)
batches = iter(loader)  # kept: the workers stay up, mid-epoch
next(batches)
print(" ".join(map(str, descendants())), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
def test_forkserver_workers_end_when_the_trainer_is_killed(corpora):
    """A trainer killed mid-epoch leaves no process behind: its forkserver workers (whose parent
    is the server, not the trainer) notice and end, and the server ends with them."""
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-c", _KILLED_MID_EPOCH, str(corpora["shar_a"])],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    left = [int(p) for p in proc.stdout.split()]
    assert len(left) >= 3  # the server and two workers (and multiprocessing's resource tracker)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in left):
        time.sleep(0.2)
    alive = [p for p in left if Path(f"/proc/{p}").exists()]
    for p in alive:  # do not leave them to the next test
        os.kill(p, signal.SIGKILL)
    assert not alive, f"still running after the trainer was killed: {alive}"


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("which", ["shar_a", "shar_b", "jsonl_b"])
def test_every_cut_once_per_epoch_across_ranks_and_workers(corpora, which, workers):
    want = {c.id for c in open_cuts(str(corpora[which]), "data.train")}
    for epoch in (0, 1):
        per_rank = epoch_ids(str(corpora[which]), world=2, workers=workers, epoch=epoch)
        seen = [i for ids in per_rank for i in ids]
        assert sorted(seen) == sorted(want)  # union = all, nothing twice
        assert not set(per_rank[0]) & set(per_rank[1])
    assert epoch_ids(str(corpora[which]), 2, workers, 0) != epoch_ids(
        str(corpora[which]), 2, workers, 1
    )  # reshuffled per epoch


def test_slots_read_disjoint_shards_when_there_are_enough(corpora):
    (src,) = parse_sources(str(corpora["shar_a"]))
    files = [{u.shard.cuts for u in slot_units(0, src, 0, s, 4, seed=1)} for s in range(4)]
    assert sum(len(f) for f in files) == 8 and len(set().union(*files)) == 8
    (small,) = parse_sources(str(corpora["shar_b"]))  # 3 shards, 4 slots: striped
    units = [slot_units(0, small, 0, s, 4, seed=1) for s in range(4)]
    assert all(units) and len({(u.shard, u.stripe) for us in units for u in us}) == 6


def test_mix_draws_by_weight_and_ends_with_the_first_exhausted_source(tmp_path):
    rec = Recording(id="r", sources=[], sampling_rate=16000, num_samples=16000, duration=1.0)
    for name, n in (("x", 3000), ("y", 3000)):
        CutSet.from_cuts(MonoCut(f"{name}{i}", 0, 1.0, 0, recording=rec) for i in range(n)).to_file(
            tmp_path / f"{name}.jsonl.gz"
        )
    spec = [
        {"path": str(tmp_path / "x.jsonl.gz"), "weight": 1},
        {"path": str(tmp_path / "y.jsonl.gz"), "weight": 3},
    ]
    ids = [c.id for c in SlotCuts(parse_sources(spec), 0, 0, 1, seed=0)]
    from_x = sum(i.startswith("x") for i in ids)
    assert len(ids) - from_x == 3000  # y (weight 3) ran out first: the epoch ends there
    assert abs(from_x / len(ids) - 0.25) < 0.03  # P(x) = 1 / (1 + 3) per drawn cut
    assert ids == [c.id for c in SlotCuts(parse_sources(spec), 0, 0, 1, seed=0)]


@pytest.mark.parametrize("workers", [0, 2])
def test_stream_resumes_exactly_mid_epoch(corpora, workers):
    spec = [{"path": str(corpora["shar_a"]), "weight": 0.5}, str(corpora["jsonl_b"])]

    def loader() -> StreamLoader:
        ds = SlotBatches(
            parse_sources(spec),
            CaptionDataset(None, max_clip_duration=None),
            max_duration=3.0,
            num_workers=workers,
            seed=5,
        )
        return StreamLoader(ds)

    full = loader()
    full.set_epoch(1)
    ref = [b["cut_ids"] for b in full]
    assert len(ref) > 6
    for k in (1, 4, len(ref) - 1):
        first = loader()
        first.set_epoch(1)
        it = iter(first)
        head = [next(it)["cut_ids"] for _ in range(k)]
        state = json.loads(json.dumps(first.state_dict()))  # what a checkpoint keeps
        del it
        again = loader()
        assert again.load_state_dict(state)
        again.set_epoch(1, skip=k)
        assert head + [b["cut_ids"] for b in again] == ref


def test_subset_selects_by_stored_rank(tmp_path):
    cuts = make_tone_corpus(tmp_path / "audio", 12, seed=0)
    ranked = []
    for r, cut in zip(random.Random(0).sample(range(12), 12), cuts, strict=True):
        cut.custom = {"subset_rank": r}
        ranked.append(cut)
    shar = write_shar(CutSet.from_cuts(ranked), tmp_path / "shar", shard_size=5)
    (shar / "cuts.subsets.json").write_text(json.dumps({"0.5": 6, "n3": 3}))
    want = {c.id for c in ranked if c.custom["subset_rank"] < 6}
    got = {c.id for c in open_cuts({"path": str(shar), "subset": "0.5"}, "data.train")}
    assert got == want
    small = {c.id for c in open_cuts({"path": str(shar), "subset": 3}, "data.train")}
    assert small < got and len(small) == 3
    # CutSet.from_shar still reads the directory (the table does not look like a field)
    assert len(list(CutSet.from_shar(in_dir=shar))) == 12
    with pytest.raises(ConfigError, match=r"data.train: unknown subset '0.3'.*known: 0.5, n3"):
        open_cuts({"path": str(shar), "subset": "0.3"}, "data.train")


def test_shar_audio_equals_the_original(corpora):
    by_id = {c.id: c for c in CutSet.from_file(corpora["jsonl_b"])}
    loader = train_loader(
        str(corpora["shar_b"]), CaptionDataset(None, max_clip_duration=None), 1000.0, seed=0
    )
    loader.set_epoch(0)
    batches = list(loader)
    assert sorted(i for b in batches for i in b["cut_ids"]) == sorted(by_id)
    for batch in batches:
        _same_audio(batch, by_id)


def _same_audio(batch: dict, by_id: dict) -> None:
    for i, cid in enumerate(batch["cut_ids"]):
        n = int(batch["audio_lens"][i])
        ref = by_id[cid].load_audio()[0]
        assert n == len(ref)
        assert float(abs(batch["audio"][i, :n].numpy() - ref).max()) < 1e-4  # 16-bit flac


def test_bad_sources_name_the_key(corpora, tmp_path):
    good = str(corpora["shar_a"])
    cases = [
        (str(tmp_path / "nope"), r"data.train.path: .*nope does not exist"),
        ([good, {"path": good, "weight": 0}], r"data.train\[1\].weight: must be a finite"),
        ([good, {"path": good, "weight": -1}], r"data.train\[1\].weight: must be a finite"),
        ([{"path": good, "weight": "lots"}], r"data.train\[0\].weight: expected a number"),
        ([{"path": good, "wieght": 2}], r"data.train\[0\].wieght: unknown key"),
        ([{"weight": 2}], r"data.train\[0\].path: a source needs a path"),
        (str(tmp_path), r"no Shar shards"),
        ([], r"data.train: no data given"),
    ]
    for value, msg in cases:
        with pytest.raises(ConfigError, match=msg):
            parse_sources(value, "data.train")


def test_lost_or_truncated_shards(corpora, tmp_path):
    import shutil

    shar = tmp_path / "shar"
    shutil.copytree(corpora["shar_a"], shar)
    (shar / "recording.000003.tar").unlink()
    with pytest.raises(ConfigError, match=r"1 of 8 shards have no recording tar.*cuts.000003"):
        parse_sources(str(shar), "data.train")
    shutil.copy(corpora["shar_a"] / "recording.000003.tar", shar)
    tar = shar / "recording.000002.tar"  # truncated tar: its later cuts are skipped, counted
    tar.write_bytes(tar.read_bytes()[: tar.stat().st_size // 3])
    cuts_gz = shar / "cuts.000005.jsonl.gz"  # truncated manifest: the rest of the shard skipped
    cuts_gz.write_bytes(cuts_gz.read_bytes()[:-20])
    loader = train_loader(str(shar), CaptionDataset(None, max_clip_duration=None), 4.0, seed=1)
    loader.set_epoch(0)
    batches = list(loader)
    kept = [i for b in batches for i in b["cut_ids"]]
    skipped = sum(b["num_skipped"] for b in batches)
    assert 0 < skipped and len(kept) + skipped < 30 and len(kept) >= 30 - 4 - 4
    assert len(set(kept)) == len(kept)


def test_shar_sources_at_different_rates_are_refused(tmp_path):
    a = write_shar(make_tone_corpus(tmp_path / "a", 3, sr=16000), tmp_path / "sa", 2)
    b = write_shar(make_tone_corpus(tmp_path / "b", 3, sr=8000, prefix="b"), tmp_path / "sb", 2)
    with pytest.raises(ConfigError, match=r"disagree on sampling rate: .*16000 Hz.*8000 Hz"):
        parse_sources([str(a), str(b)], "data.train")


def test_a_damaged_manifest_line_ends_its_shard_with_a_warning(tmp_path, caplog):
    from toolkit.data.shar import iter_cut_dicts

    p = tmp_path / "cuts.000000.jsonl.gz"
    with gzip.open(p, "wt") as f:
        f.write('{"id": "a"}\n{"id": "b"}\n{broken\n{"id": "c"}\n')
    assert [d["id"] for d in iter_cut_dicts(p)] == ["a", "b"]
    assert "damaged after 2 cuts" in caplog.text
