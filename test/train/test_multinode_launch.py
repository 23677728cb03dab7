"""utils/slurm_torchrun.sh: two SLURM "nodes" (two launcher processes on this machine, a fake
``scontrol``) start one torchrun each and train the real CLI as one world of 2 ranks."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from fixtures import tiny_config

from toolkit.train import checkpoint as ckpt

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "egs" / "demo" / "conf" / "pretrain.yaml"
LAUNCHER = ROOT / "utils" / "slurm_torchrun.sh"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _slurm_env(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    scontrol = bin_dir / "scontrol"  # `scontrol show hostnames LIST` → one host per line
    scontrol.write_text(
        '#!/bin/sh\n[ "$1 $2" = "show hostnames" ] && printf "localhost\\nnode2\\n"\n'
    )
    scontrol.chmod(0o755)
    return {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT),
        "OMP_NUM_THREADS": "1",
        "SLURM_NNODES": "2",
        "SLURM_JOB_NODELIST": "localhost,node2",
        "NPROC_PER_NODE": "1",
        "MASTER_PORT": str(_free_port()),
        "TORCHRUN": f"{sys.executable} -m torch.distributed.run",
    }


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_two_slurm_nodes_train_as_one_world(tone_data, tmp_path):
    env = _slurm_env(tmp_path)
    exp = tmp_path / "exp"
    over = tiny_config(
        exp,
        tone_data["train"],
        tone_data["spm"],
        **{"train.max_steps": 4, "train.save_every": 2, "frontend.stats_file": "null"},
    )
    cmd = [str(LAUNCHER), "-m", "toolkit.bin.train", "-c", str(CONF), "--exp-dir", str(exp)]
    procs = [
        subprocess.Popen(
            cmd + over,
            env={**env, "SLURM_NODEID": str(node)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # a process group per "node": killed whole on a timeout
        )
        for node in (0, 1)
    ]
    outs = []
    for p in procs:
        try:
            outs.append(p.communicate(timeout=240)[0])
        except subprocess.TimeoutExpired:
            for q in procs:
                os.killpg(q.pid, signal.SIGKILL)
            raise
    for p, out in zip(procs, outs):
        assert p.returncode == 0, out[-3000:]
    assert "node 0 of 2, 1 processes, master localhost:" in outs[0]
    assert "node 1 of 2, 1 processes, master localhost:" in outs[1]
    # rank 0 (node 0) wrote the run; the checkpoint knows both ranks
    state = torch.load(ckpt.list_checkpoints(exp / "checkpoints")[-1][1], weights_only=False)
    assert state["trainer"]["step"] == 4 and state["world_size"] == 2
    assert len(state["rng_per_rank"]) == 2
    assert state["rng_per_rank"][0]["torch"].ne(state["rng_per_rank"][1]["torch"]).any()
    assert (exp / "model.pt").exists()


def test_launcher_refuses_to_run_outside_slurm_or_twice_per_node(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    r = subprocess.run([str(LAUNCHER), "-m", "x"], env=env, capture_output=True, text=True)
    assert r.returncode != 0 and "SLURM_NNODES is not set" in r.stderr
    env = {**_slurm_env(tmp_path), "SLURM_NODEID": "0", "SLURM_LOCALID": "3"}
    r = subprocess.run([str(LAUNCHER), "-m", "x"], env=env, capture_output=True, text=True)
    assert r.returncode != 0 and "run one task per node" in r.stderr
