"""The train CLI under DDP (2 gloo ranks, 2 dataloader workers each) from Shar: one epoch reads
every cut exactly once across the ranks (shard count not divisible by ranks x workers, uneven
last batches: no hang), and a run killed with SIGKILL mid-epoch resumes with the same cut-id
sequence and the same final weights as an uninterrupted run (2-source weighted mix)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from fixtures import make_tone_corpus, tiny_config

from toolkit.data.sources import open_cuts
from toolkit.train import checkpoint as ckpt

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "egs" / "demo" / "conf" / "pretrain.yaml"


@pytest.fixture(scope="module")
def shars(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ddp_stream")
    out = {}
    for name, n, size, seed in (("a", 27, 4, 0), ("b", 20, 7, 1)):  # 7 and 3 shards
        d = root / f"shar_{name}"
        d.mkdir()
        make_tone_corpus(root / name, n, seed=seed, prefix=name).to_shar(
            d, fields={"recording": "flac"}, shard_size=size
        )
        out[name] = d
    return out


def run_ddp(tone_data, exp: Path, train, steps: int, extra: dict, resume: bool = False, **kw):
    conf = exp.parent / f"{exp.name}_data.yaml"
    conf.write_text(yaml.safe_dump({"data": {"train": train}}))
    over = tiny_config(
        exp,
        "ignored",
        tone_data["spm"],
        **{
            "data.num_workers": 2,
            "data.max_duration": 5.0,
            "train.max_steps": steps,
            "train.log_cut_ids": "true",
            "frontend.stats_file": "null",
            **extra,
        },
    )
    over = [o for o in over if not o.startswith("data.train=")]
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        "-m", "toolkit.bin.train", "-c", str(CONF), "-c", str(conf), "--exp-dir", str(exp),
        *(["--resume"] if resume else []), *over,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(cmd, env=env, **kw)


def cut_id_log(exp: Path, rank: int) -> list[tuple[int, list[str]]]:
    rows = (exp / f"cut_ids.rank{rank}.tsv").read_text().splitlines()
    return [(int(r.split("\t")[0]), r.split("\t")[2].split(",")) for r in rows]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_one_epoch_reads_every_cut_once_across_ranks(tone_data, shars, tmp_path):
    exp = tmp_path / "epoch"
    proc = run_ddp(
        tone_data, exp, str(shars["a"]), 1000, {"train.max_epochs": 1}, stderr=subprocess.PIPE
    )
    _, err = proc.communicate(timeout=500)
    assert proc.returncode == 0, err.decode()[-3000:]
    per_rank = [[i for _, ids in cut_id_log(exp, r) for i in ids] for r in (0, 1)]
    want = sorted(c.id for c in open_cuts(str(shars["a"]), "data.train"))
    assert sorted(per_rank[0] + per_rank[1]) == want
    assert not set(per_rank[0]) & set(per_rank[1])


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_sigkill_mid_epoch_then_resume_gives_the_same_stream(tone_data, shars, tmp_path):
    mix = [{"path": str(shars["a"]), "weight": 0.4}, {"path": str(shars["b"]), "weight": 0.6}]
    steps, extra = 14, {"train.save_every": 3, "data.max_duration": 3.0}
    ref = tmp_path / "ref"
    p = run_ddp(tone_data, ref, mix, steps, extra, stderr=subprocess.PIPE)
    _, err = p.communicate(timeout=400)
    assert p.returncode == 0, err.decode()[-3000:]

    exp = tmp_path / "killed"
    p = run_ddp(tone_data, exp, mix, steps, extra, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (exp / "checkpoints" / "checkpoint-6.pt").exists():
        assert p.poll() is None, "training ended before it could be killed"
        assert time.time() < deadline
        time.sleep(0.01)
    # the launcher, both ranks and their data workers (the ranks run in their own sessions)
    subprocess.run(["pkill", "-KILL", "-f", f"exp-dir {exp}( |$)"], check=False)
    p.wait()
    time.sleep(0.5)
    assert subprocess.run(["pgrep", "-f", f"exp-dir {exp}( |$)"]).returncode == 1
    done = ckpt.list_checkpoints(exp / "checkpoints")[-1][0]
    assert 6 <= done < steps
    state = torch.load(exp / "checkpoints" / f"checkpoint-{done}.pt", weights_only=False)
    assert state["trainer"]["epoch"] == 0 and state["trainer"]["batch_in_epoch"] > 0  # mid-epoch

    p = run_ddp(tone_data, exp, mix, steps, extra, resume=True, stderr=subprocess.PIPE)
    _, err = p.communicate(timeout=400)
    (tmp_path / "resume.err").write_bytes(err)
    assert p.returncode == 0, err.decode()[-3000:]
    assert f"resumed from step {done}" in err.decode()
    for rank in (0, 1):
        assert cut_id_log(exp, rank) == cut_id_log(ref, rank)
    after = [s for r in (0, 1) for s, _ in cut_id_log(ref, r) if s >= done]
    assert after  # the comparison covers batches trained after the resume point
    epochs = {int(r.split("\t")[1]) for r in (ref / "cut_ids.rank0.tsv").read_text().splitlines()}
    assert len(epochs) >= 2  # the run crossed an epoch boundary after the resume point
    a = torch.load(ref / "model.pt", weights_only=False)["model"]
    b = torch.load(exp / "model.pt", weights_only=False)["model"]
    for k in a:
        assert torch.equal(a[k], b[k]), k
