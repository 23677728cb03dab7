"""Stage-5 task evaluation: k-fold cross-validation, task names, skip-missing, leakage errors and
result provenance (toolkit.bin.evaluate with a task config)."""

from __future__ import annotations

import csv
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from fixtures import make_tone_corpus, tiny_config
from lhotse import CutSet

from toolkit.evaluate.embeddings import EmbeddingSet
from toolkit.evaluate.folds import average_rounds, concat_sets, fold_splits

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "egs" / "demo" / "conf" / "pretrain.yaml"


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _es(ids, label):
    n = len(ids)
    return EmbeddingSet(ids, torch.arange(n, dtype=torch.float)[:, None], None,
                        {"t": [label] * n}, [[f"c{i}"] for i in ids],
                        extra={"frames": [torch.zeros(2, 1)] * n})  # fmt: skip


def test_fold_splits_and_average():
    folds = [_es(["a", "b"], "x"), _es(["c"], "y"), _es(["d"], "z"), _es(["e"], "w")]
    s = fold_splits(folds, 3)
    assert s["test"].cut_ids == ["e"] and s["dev"].cut_ids == ["a", "b"]
    assert s["train"].cut_ids == ["c", "d"] and s["train"].labels == {"t": ["y", "z"]}
    assert len(s["train"].extra["frames"]) == 2
    both = concat_sets(folds[:2])
    assert both.pooled.shape == (3, 1) and both.captions == [["ca"], ["cb"], ["cc"]]
    with pytest.raises(ValueError, match=">= 3 folds"):
        fold_splits(folds[:2], 0)
    row = {"model": "m", "group": "g", "task": "t", "metric": "acc", "chance": 10.0}
    avg = average_rounds(
        [[{**row, "value": 50.0}], [{**row, "value": 70.0}], [{**row, "value": None}]]
    )
    assert avg == [
        {**row, "value": 60.0, "chance": 10.0, "std": pytest.approx(200**0.5), "folds": 2}
    ]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_kfold_task_config_end_to_end(tone_data, tmp_path):
    over = tiny_config(tmp_path, tone_data["train"], tone_data["spm"], **{"train.max_steps": 3})
    over += [f"data.dev={tone_data['dev']}", f"data.test={tone_data['test']}",
             "frontend.stats_file=null", "tags.fraction=0.5", "tags.objective=contrastive"]  # fmt: skip
    r = _run([sys.executable, "-m", "toolkit.bin.train", "-c", str(CONF), "--exp-dir", "exp", *over],
             tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    folds = []
    for k in range(3):
        path = tmp_path / f"tones_cuts_fold{k + 1}.jsonl.gz"
        make_tone_corpus(tmp_path / "folds", 9, seed=10 + k, prefix=f"f{k}").to_file(path)
        folds.append(path)
    task = tmp_path / "tones.yaml"
    task.write_text(
        "eval:\n  baselines: []\n  folds: [" + ", ".join(map(str, folds)) + "]\n"
        "  evaluators:\n    - {name: linear_probe}\n"
    )
    ev = [sys.executable, "-m", "toolkit.bin.evaluate", "--exp-dir", "exp", "-c", str(task),
          "--out-dir", "exp/eval_tones", "eval.name=tones", "eval.num_workers=0"]  # fmt: skip
    r = _run(ev, tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = list(csv.DictReader((tmp_path / "exp/eval_tones/results.csv").open()))
    assert rows and all(x["group"] == "linear probe (mean pool) [tones]" for x in rows)
    assert all(x["folds"] == "3" and x["std"] != "" for x in rows)
    cfg_hash = hashlib.sha1((tmp_path / "exp/config.yaml").read_bytes()).hexdigest()[:12]
    assert {x["config_hash"] for x in rows} == {cfg_hash}
    assert {x["tag_fraction"] for x in rows} == {"0.5"} and {x["seed"] for x in rows} == {"3"}
    assert rows[0]["checkpoint"].endswith("model.pt")

    # a task whose corpus was not prepared is skipped quietly with --skip-missing
    gone = tmp_path / "gone.yaml"
    gone.write_text("eval: {folds: [a.jsonl.gz, b.jsonl.gz, c.jsonl.gz]}\n")
    r = _run([*ev[:6], str(gone), "--out-dir", "exp/eval_gone", "--skip-missing"], tmp_path)
    assert r.returncode == 0 and not (tmp_path / "exp/eval_gone/results.csv").exists()
    r = _run([*ev[:6], str(gone), "--out-dir", "exp/eval_gone"], tmp_path)
    assert r.returncode == 2 and "eval.folds[0]: manifest a.jsonl.gz not found" in r.stderr

    # evaluation clips that were pretrained on stop the evaluation with their ids
    leak = tmp_path / "leak.jsonl.gz"
    cuts = list(CutSet.from_file(tone_data["train"]))[:2] + list(
        CutSet.from_file(tone_data["test"])
    )
    CutSet.from_cuts(cuts).to_file(leak)
    r = _run([*ev[:5], f"data.test={leak}", "eval.baselines=[]", "eval.num_workers=0"], tmp_path)
    assert r.returncode == 2
    assert "also in the pretraining manifest" in r.stderr and cuts[0].id in r.stderr


def test_layer_choice(tone_data, tmp_path):
    from toolkit.bin.evaluate import model_features
    from toolkit.config import ConfigError, load_config
    from toolkit.model import build_model, build_tokenizer

    over = tiny_config(tmp_path, tone_data["train"], tone_data["spm"], **{"encoder.num_layers": 2})
    cfg = load_config([CONF], [*over, "frontend.stats_file=null"])
    model = build_model(cfg, build_tokenizer(cfg)).eval()
    audio, lens = torch.randn(2, 16000), torch.tensor([16000, 9000])
    with torch.no_grad():
        final = model_features(model, frames=True)(audio, lens)
        last = model_features(model, frames=True, layer=-1)(audio, lens)
        first = model_features(model, frames=True, layer=0)(audio, lens)
        avg = model_features(model, frames=True, layer="average")(audio, lens)
        layers, hl = model.encoder.forward_layers(*model.features(audio, lens))
    assert len(layers) == 3  # two blocks + the final normalised output
    assert torch.allclose(final["pooled"], last["pooled"], atol=1e-6)
    assert torch.allclose(final["audio_emb"], first["audio_emb"], atol=1e-6)  # joint space: final
    assert not torch.allclose(first["frames"], final["frames"])
    assert torch.allclose(avg["frames"], torch.stack(layers).mean(0), atol=1e-6)
    with pytest.raises(ConfigError, match="has 3 layer outputs"):
        model_features(model, layer=5)(audio, lens)
