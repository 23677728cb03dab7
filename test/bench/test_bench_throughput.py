"""bench/pretrain_throughput.py: the CPU smoke modes of the pretraining throughput benchmark
(synthetic sweep and the Shar data path), its table/JSON fields and its helpers."""

from __future__ import annotations

import importlib.util
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from fixtures import run_bench

from toolkit.train.trainer import native_bf16

pytestmark = pytest.mark.slow  # recipes / subprocesses: run by .ci/run (pytest -m slow)

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "bench" / "pretrain_throughput.py"


def _load_bench():
    spec = importlib.util.spec_from_file_location("pretrain_throughput", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["pretrain_throughput"] = mod
    spec.loader.exec_module(mod)
    return mod


pt = _load_bench()


def _run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return run_bench(SCRIPT.name, *args, timeout=timeout)


def _table_rows(stdout: str) -> list[list[str]]:
    lines = [ln for ln in stdout.splitlines() if ln.startswith("| ")]
    assert lines[0].startswith("| objective | data | mode | batch | status | audio-s/s")
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in lines[1:]]


def test_tiny_synthetic_all_modes(tmp_path: Path) -> None:
    out = tmp_path / "rows.json"
    proc = _run("--device", "cpu", "--tiny", "--json", str(out), "--work-dir", str(tmp_path))
    rows = {r["mode"]: r for r in json.loads(out.read_text())["rows"]}
    meta = json.loads(out.read_text())["meta"]
    assert list(rows) == ["eager-fp32", "eager-bf16", "compiled-bf16"]
    assert meta["ceiling_tflops"] > 0 and meta["encoder"]["name"] == "zipformer"
    assert rows["compiled-bf16"]["status"].startswith("skipped")
    for mode in ("eager-fp32", "eager-bf16"):
        r = rows[mode]
        assert r["status"] == "ok" and r["batch"] == 2 and r["steps"] == 2
        assert r["skipped_updates"] == 0
        # audio-s/s is the batch's audio over the median step time (2 clips of 1.5 s)
        assert r["audio_s_per_s"] == pytest.approx(2 * 1.5 / (r["step_ms"] / 1000), rel=1e-6)
        assert r["step_ms_min"] <= r["step_ms"] <= r["step_ms_max"]
        assert r["fwd_ms"] > 0 and r["bwd_ms"] > 0 and r["opt_ms"] > 0
        assert r["flops_per_step"] > 1e6  # counted on the real model, not a placeholder
        # MFU is taken against the matmul ceiling of the precision the row ran in
        assert r["ceiling_tflops"] == meta["ceilings"][r["precision"]] > 0
        assert r["mfu"] == pytest.approx(r["achieved_tflops"] / r["ceiling_tflops"])
        assert r["achieved_tflops"] == pytest.approx(
            r["flops_per_step"] / (r["step_ms"] / 1000) / 1e12
        )
        # bf16 autocast runs on a CPU with native bf16 only (the trainer's rule); fp32 elsewhere
        native = native_bf16(torch.device("cpu"))
        assert r["precision"] == ("bf16" if mode == "eager-bf16" and native else "fp32")
    fp32, bf16 = rows["eager-fp32"], rows["eager-bf16"]
    assert fp32["flops_per_step"] == bf16["flops_per_step"]
    assert fp32["speedup_vs_eager_fp32"] == pytest.approx(1.0)
    assert bf16["speedup_vs_eager_fp32"] == pytest.approx(
        bf16["audio_s_per_s"] / fp32["audio_s_per_s"]
    )
    assert fp32["speedup_vs_eager_bf16"] == pytest.approx(
        fp32["audio_s_per_s"] / bf16["audio_s_per_s"]
    )
    table = _table_rows(proc.stdout)
    assert [t[2] for t in table] == ["eager-fp32", "eager-bf16", "compiled-bf16"]
    assert table[0][4] == "ok" and table[2][4].startswith("skipped")
    assert float(table[0][5].replace(",", "")) == pytest.approx(fp32["audio_s_per_s"], abs=0.5)


def test_tiny_data_mode_on_synthetic_shar(tmp_path: Path) -> None:
    shar = tmp_path / "shar"
    _run("--make-synthetic-shar", str(shar), "--clips", "12", "--tiny")
    from lhotse import CutSet

    cuts = list(CutSet.from_shar(in_dir=shar))
    assert len(cuts) == 12 and all(c.duration == pytest.approx(1.5) for c in cuts)
    assert all(len(c.supervisions[0].custom["caption"]) == 2 for c in cuts)
    assert cuts[0].load_audio().shape == (1, 24000)

    out = tmp_path / "data.json"
    proc = _run(
        "--device", "cpu", "--tiny", "--data", f"shar:{shar}", "--modes", "eager-fp32",
        "--num-workers", "0", "--steps", "3", "--json", str(out), "--work-dir", str(tmp_path),
    )  # fmt: skip
    (row,) = json.loads(out.read_text())["rows"]
    assert row["status"] == "ok" and row["data"] == f"shar:{shar}"
    assert row["steps"] == 3 and row["mean_batch"] == 2.0
    assert 0.0 <= row["idle_share"] < 1.0
    assert row["audio_s_per_s"] > 0 and row["flops_per_step"] > 1e6
    assert _table_rows(proc.stdout)[0][-1].endswith("%")  # idle share column filled


def test_missing_data_dir_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="no such directory"):
        next(pt.data_batches(f"shar:{tmp_path / 'nope'}", 2, 1.5, None, {}, 0, 0))


def test_oom_is_reported_and_larger_batches_skipped(tmp_path, monkeypatch, capsys) -> None:
    calls = []

    def fake_measure(args, cfg, tok, mode, b, device, ceiling, cache, work_dir):
        calls.append((mode, b))
        if b >= 4:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return pt.Row(mode=mode, batch=b, objective=args.objective, data=args.data,
                      audio_s_per_s=10.0 if mode == "eager-fp32" else 25.0)  # fmt: skip

    monkeypatch.setattr(pt, "measure", fake_measure)
    monkeypatch.setattr(pt, "matmul_ceiling", lambda device, tiny: {"fp32": (1.0, "stub")})
    out = tmp_path / "rows.json"
    handler = signal.getsignal(signal.SIGTERM)
    code = pt.main(
        ["--device", "cpu", "--tiny", "--batch-sizes", "2,4,8", "--modes", "eager-fp32,eager-bf16",
         "--json", str(out), "--work-dir", str(tmp_path)]
    )  # fmt: skip
    assert code == 0
    assert signal.getsignal(signal.SIGTERM) is handler  # not left to the caller's forks
    assert calls == [("eager-fp32", 2), ("eager-fp32", 4), ("eager-bf16", 2), ("eager-bf16", 4)]
    rows = json.loads(out.read_text())["rows"]
    assert [r["status"] for r in rows] == ["ok", "OOM", "OOM (skipped: OOM at batch 4)"] * 2
    assert rows[3]["speedup_vs_eager_fp32"] == pytest.approx(2.5)
    assert "| OOM |" in capsys.readouterr().out


def test_hash_tokenizer_and_synthetic_batch() -> None:
    tok = pt.HashTokenizer(1000, pad_id=0, bos_id=101, eos_id=102, first_id=999 - 900, max_len=6)
    ids, lens = tok.encode_batch(["a dog barks", "one two three four five six seven"])
    assert lens.tolist() == [5, 6] and ids.shape == (2, 6)
    assert ids[0].tolist()[0] == 101 and ids[0].tolist()[4] == 102 and ids[0, 5] == 0
    assert ids[1, -1] == 102 and (ids[:, 1:4] >= 99).all()
    assert tok.encode("Dog") == tok.encode("dog")

    gen = torch.Generator().manual_seed(0)
    b = pt.synthetic_batch(4, 0.5, 16000, (3, 7), tok, gen, pin=False)
    assert b["audio"].shape == (4, 8000) and b["audio_lens"].tolist() == [8000] * 4
    assert b["duration"] == pytest.approx(2.0)
    lens = b["text_lens"]
    assert b["text_tokens"].shape == (4, 7) and int(lens.max()) == 7 and int(lens.min()) >= 3
    for row, n in zip(b["text_tokens"], lens.tolist()):
        assert row[0] == 101 and row[n - 1] == 102 and (row[n:] == 0).all()
        assert ((row[1 : n - 1] >= tok.first_id) & (row[1 : n - 1] < 1000)).all()


def test_count_flops_matches_analytic_linear() -> None:
    from contextlib import nullcontext

    class Model(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(16, 8)

        def forward(self, batch):
            return {"loss": self.lin(batch["audio"]).square().mean()}

    class Trainer:
        device = torch.device("cpu")
        autocast = staticmethod(nullcontext)
        model = Model()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

    flops = pt.count_flops(Trainer, {"audio": torch.randn(5, 16)})
    # forward 2·B·in·out, backward the same again (the weight gradient; the input needs none)
    assert flops == 2 * (2 * 5 * 16 * 8)
    assert all(p.grad is None for p in Trainer.model.parameters())


def test_is_oom_sees_wrapped_errors() -> None:
    try:
        try:
            raise torch.OutOfMemoryError("boom")
        except torch.OutOfMemoryError as inner:
            raise RuntimeError("backend compiler failed") from inner
    except RuntimeError as e:
        assert pt.is_oom(e)
    assert not pt.is_oom(ValueError("shape mismatch"))


def test_synthetic_shar_in_parallel_shards(tmp_path: Path) -> None:
    from lhotse import CutSet

    out = pt.make_synthetic_shar(tmp_path / "shar", 5, seconds=0.25, shard_size=2, jobs=2)
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"{f}.{i:06d}.{e}" for f, e in (("cuts", "jsonl.gz"), ("recording", "tar"))
                     for i in range(3)]  # fmt: skip
    cuts = list(CutSet.from_shar(in_dir=out))
    assert [c.id for c in cuts] == [f"synthetic-{i:07d}" for i in range(5)]
    audio = [c.load_audio() for c in cuts]
    assert all(a.shape == (1, 4000) for a in audio)
    assert not torch.allclose(torch.from_numpy(audio[0]), torch.from_numpy(audio[3]))
    with pytest.raises(SystemExit, match="already holds a Shar"):
        pt.make_synthetic_shar(out, 1)


def test_captioning_objective_in_process(tmp_path: Path) -> None:
    out = tmp_path / "cap.json"
    code = pt.main(
        ["--device", "cpu", "--tiny", "--objective", "captioning", "--modes", "eager-fp32",
         "--json", str(out), "--work-dir", str(tmp_path)]
    )  # fmt: skip
    assert code == 0
    data = json.loads(out.read_text())
    (row,) = data["rows"]
    assert row["status"] == "ok" and row["objective"] == "captioning"
    assert row["flops_per_step"] > 1e6 and row["audio_s_per_s"] > 0
    assert any("HashTokenizer" in n for n in data["meta"]["notes"])  # no spm model needed


def test_missing_lhotse_is_a_clear_error(monkeypatch, capsys) -> None:
    monkeypatch.setattr(pt, "has_module", lambda name: name != "lhotse")
    with pytest.raises(SystemExit) as exc:
        pt.require_lhotse()
    assert exc.value.code == 2
    assert "lhotse is not installed" in capsys.readouterr().err


@pytest.mark.timeout(600)
def test_gpu_session_script_rehearses_on_cpu(tmp_path):
    """bench/gpu_session.sh --tiny: the device call's script runs every step on a CPU and leaves
    the five JSON files with measured rows (a broken script would waste a device session)."""
    out = tmp_path / "out"
    proc = subprocess.run(
        ["bash", str(REPO / "bench" / "gpu_session.sh"), "--tiny"],
        capture_output=True,
        text=True,
        timeout=500,
        cwd=REPO,
        env={**__import__("os").environ, "OUT": str(out), "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for name in ("synthetic", "optimizer", "data", "captioning", "checkpointing"):
        assert f"== {name}" in proc.stdout
        rows = json.loads((out / f"{name}.json").read_text())["rows"]
        assert rows, name
        if name != "optimizer":
            assert all(r["status"] == "ok" for r in rows), (name, rows)
    assert (out / "gpu.txt").exists()
