"""egs/folder end to end, as a new user runs it: a ``{train,test}/<label>/`` tree of real audio
formats (no dev folder, a corrupt, an empty and a too-short file) through stages 0-5; then an
existing model evaluated on a CSV listing in one command (``--model``, stages 1-4 skipped).

The recipe runs in a copy of its folder (symlinks into this repository) so that ``data/`` and
``exp/`` land in a temporary folder, exactly where they would land under ``egs/folder``. Fast
checks of the failure messages, of ``--model`` guards and of the retrieval ``n/m`` marking
follow (about 40 s in all on 2 CPU cores)."""

from __future__ import annotations

import csv
import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

pytestmark = pytest.mark.slow  # recipes / subprocesses: run by .ci/run (pytest -m slow)

ROOT = Path(__file__).resolve().parents[2]
LABELS = ("kick", "hihat", "bass")
TINY = [
    "encoder.dim=32", "encoder.num_layers=1", "encoder.num_heads=2", "encoder.ff_dim=64",
    "encoder.subsampling_channels=8", "encoder.conv_kernel=3", "objective.embed_dim=16",
    "objective.text_encoder.dim=32", "objective.text_encoder.num_layers=1",
    "objective.text_encoder.num_heads=2", "objective.text_encoder.ff_dim=64",
    "data.max_duration=20", "data.num_workers=0", "train.max_steps=4", "train.save_every=4",
    "train.log_every=1", "train.progress=false", "scheduler.warmup_steps=1",
]  # fmt: skip


def _signal(label: str, seconds: float, sr: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    if label == "kick":  # a decaying low thump
        x = np.sin(2 * np.pi * 60 * t) * np.exp(-8 * t)
    elif label == "hihat":  # decaying noise
        x = rng.standard_normal(t.size) * np.exp(-20 * t)
    else:  # a steady bass tone
        x = np.sin(2 * np.pi * 110 * t)
    return (0.3 * x + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def _mp3_works(tmp: Path) -> bool:
    """Feature detection: this soundfile can write an mp3 and Lhotse can read it back."""
    from lhotse import Recording

    try:
        path = tmp / "probe.mp3"
        sf.write(path, np.zeros(8000, np.float32), 16000, format="MP3")
        return Recording.from_file(path).load_audio().size > 0
    except Exception:
        return False


def _formats(tmp: Path) -> list[tuple[str, int, int, dict]]:
    """(extension, sample rate, channels, soundfile options) of the files to write."""
    out = [
        ("wav", 8000, 1, {}),
        ("wav", 16000, 1, {}),
        ("wav", 44100, 1, {}),
        ("wav", 48000, 1, {}),
        ("flac", 44100, 2, {}),
        ("ogg", 22050, 1, {"format": "OGG", "subtype": "VORBIS"}),
    ]
    if _mp3_works(tmp):
        out.append(("mp3", 44100, 1, {"format": "MP3"}))
    return out


def _write(path: Path, label: str, seconds: float, sr: int, ch: int, opts: dict, seed: int):
    path.parent.mkdir(parents=True, exist_ok=True)
    x = _signal(label, seconds, sr, seed)
    sf.write(path, np.stack([x] * ch, axis=1) if ch > 1 else x, sr, **opts)


def _make_tree(root: Path, formats: list) -> None:
    """train/<label>/ (8 files each: every format, plus two takes of one recording) and
    test/<label>/ (3 each); one corrupt, one empty and one 50 ms file in test/kick."""
    for k, label in enumerate(LABELS):
        for i in range(6):
            ext, sr, ch, opts = formats[(i + k) % len(formats)]
            _write(root / "train" / label / f"{label}_{i:02d}.{ext}", label, 1.0 + 0.1 * i,
                   sr, ch, opts, seed=100 * k + i)  # fmt: skip
        for take in ("a", "b"):  # two takes of one recording: never split apart
            _write(root / "train" / label / f"{label}_rec9_{take}.wav", label, 1.2, 16000, 1, {},
                   seed=100 * k + 50 + ord(take))  # fmt: skip
        for i in range(3):
            ext, sr, ch, opts = formats[(i + 2 * k) % len(formats)]
            _write(root / "test" / label / f"{label}_t{i}.{ext}", label, 1.1, sr, ch, opts,
                   seed=100 * k + 80 + i)  # fmt: skip
    (root / "test" / "kick" / "corrupt.wav").write_bytes(b"RIFF\x00\x01junk" * 20)
    sf.write(root / "test" / "kick" / "empty.wav", np.zeros(0, np.float32), 16000)
    _write(root / "test" / "kick" / "short_hit.wav", "kick", 0.05, 16000, 1, {}, seed=7)


def _write_listing(folder: Path, sub: str, per_label: int, seed: int) -> None:
    """``folder/listing.csv`` (``path,label``) over ``per_label`` 1 s wavs of each label, written
    to ``folder/<sub><label><i>.wav``."""
    folder.mkdir()
    with open(folder / "listing.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label"])
        for k, label in enumerate(LABELS):
            for i in range(per_label):
                rel = f"{sub}{label}{i}.wav"
                _write(folder / rel, label, 1.0, 16000, 1, {}, seed + 10 * k + i)
                w.writerow([rel, label])


def _recipe_copy(base: Path) -> Path:
    """``<base>/repo/egs/folder``: the recipe folder as in this repository (symlinks)."""
    repo = base / "repo"
    (repo / "egs" / "folder").mkdir(parents=True)
    for name in ("toolkit", "utils"):
        (repo / name).symlink_to(ROOT / name)
    for name in ("TEMPLATE", "demo"):
        (repo / "egs" / name).symlink_to(ROOT / "egs" / name)
    folder = repo / "egs" / "folder"
    (folder / "run.sh").symlink_to("../TEMPLATE/run.sh")
    (folder / "conf").symlink_to("../demo/conf")
    (folder / "local").symlink_to(ROOT / "egs" / "folder" / "local")
    return folder


def _run(folder: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    cmd = ["bash", str(folder / "run.sh"), "--nj", "0", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)


def _lines(path: Path) -> list[dict]:
    with gzip.open(path, "rt") as f:
        return [json.loads(line) for line in f if line.strip()]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The recipe run once, stages 0-5, on the {train,test} tree."""
    base = tmp_path_factory.mktemp("folder_recipe")
    formats = _formats(base)
    _make_tree(base / "audio", formats)
    folder = _recipe_copy(base)
    res = _run(
        folder, "--stage", "0", "--stop-stage", "5", "--data-args", str(base / "audio"),
        "--vocab-size", "40", "--train-args", " ".join(TINY),
    )  # fmt: skip
    return {"folder": folder, "res": res, "formats": formats, "base": base}


@pytest.mark.timeout(600)
def test_folder_stages_0_5_real_formats_no_dev(trained):
    res, folder = trained["res"], trained["folder"]
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    for stage in range(6):
        assert f"[stage {stage}]" in res.stdout
    man = folder / "data" / "manifests"
    # a grouped dev split was carved from train and said so
    dev = _lines(man / "folder_cuts_dev.jsonl.gz")
    train = _lines(man / "folder_cuts_train.jsonl.gz")
    assert f"no dev split given: carved {len(dev)} of 24 train clips" in res.stderr
    dev_labels = {c["supervisions"][0]["custom"]["sound_class"] for c in dev}
    assert dev_labels == set(LABELS) and len(train) + len(dev) == 24
    assert len(_lines(man / "folder_cuts_test.jsonl.gz")) == 9
    orig = {c["id"]: c["supervisions"][0]["custom"]["orig_id"] for c in train + dev}
    assert not {i for i in orig.values() if "/" not in i}
    dev_ids, train_ids = {c["id"] for c in dev}, {c["id"] for c in train}
    for label in LABELS:  # the two takes of one recording are in the same split
        takes = {i for i, o in orig.items() if f"{label}_rec9_" in o}
        assert len(takes) == 2 and (takes <= dev_ids or takes <= train_ids)
    # every format was read (mp3 when this soundfile writes it), the bad files listed by reason
    exts = {Path(o).suffix for o in orig.values()}
    assert exts >= {f".{f[0]}" for f in trained["formats"]}
    assert not (man / "folder_cuts_train.skipped.tsv").exists()
    rows = (man / "folder_cuts_test.skipped.tsv").read_text().splitlines()[1:]
    reasons = {r.split("\t")[0].rsplit("/", 1)[-1]: r.split("\t")[1] for r in rows}
    assert reasons == {"corrupt.wav": "unreadable", "empty.wav": "empty",
                       "short_hit.wav": "too_short"}  # fmt: skip
    # results.md says what the numbers are on; retrieval on label captions is n/m, never bold
    md = (folder / "exp" / "contrastive" / "eval" / "results.md").read_text()
    assert "## Data" in md
    assert f"| train | {len(train)} | 0 |" in md and f"| dev | {len(dev)} | 0 |" in md, md
    assert "| test | 9 | 3 (empty 1, too_short 1, unreadable 1) |" in md
    assert "folder_cuts_test.skipped.tsv" in md
    retrieval = [line for line in md.splitlines() if line.startswith("| retrieval |")]
    assert retrieval and all("n/m" in line and "**" not in line for line in retrieval)
    assert "n/m: not meaningful" in md


@pytest.mark.timeout(600)
def test_folder_model_evaluates_a_csv_listing_in_one_command(trained):
    assert trained["res"].returncode == 0, "the training run failed"
    folder, base = trained["folder"], trained["base"]
    model = folder / "exp" / "contrastive"
    clips = base / "clips"
    _write_listing(clips, "wav/", per_label=5, seed=900)
    before = {p: p.stat().st_mtime for p in model.rglob("*")}
    res = _run(
        folder, "--model", str(model), "--stage", "0", "--stop-stage", "5",
        "--data-args", f"{clips / 'listing.csv'} --task sound_class",
        "--eval-args", "eval.baselines=[]", timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    for stage in (1, 2, 3, 4):
        assert f"[stage {stage}] skip: evaluating --model {model}" in res.stdout
    assert "toolkit.bin.train" not in res.stdout
    out = folder / "exp" / "eval_contrastive" / "eval"
    md = (out / "results.md").read_text()
    assert "| train | 9 | 0 |" in md and "| dev | 3 | 0 |" in md and "| test | 3 | 0 |" in md, md
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert any(r["task"] == "sound_class" and r["metric"] == "acc" for r in rows)
    assert {p: p.stat().st_mtime for p in model.rglob("*")} == before  # MODEL_DIR untouched


def test_missing_split_manifest_is_named(tmp_path):
    folder = _recipe_copy(tmp_path)
    res = _run(folder, "--stage", "1", "--stop-stage", "1")
    assert res.returncode == 1 and "run stage 0 first" in res.stderr, res.stderr
    man = folder / "data" / "manifests"
    man.mkdir(parents=True)
    for split in ("train", "test"):
        (man / f"folder_cuts_{split}.jsonl.gz").write_bytes(b"")
    res = _run(folder, "--stage", "1", "--stop-stage", "1")
    assert res.returncode == 1
    assert "no dev manifest (data/manifests/*_cuts_{dev}.jsonl.gz)" in res.stderr, res.stderr
    assert "found only: folder_cuts_test.jsonl.gz folder_cuts_train.jsonl.gz" in res.stderr


def test_bad_task_and_missing_input_fail_in_one_line(tmp_path):
    folder = _recipe_copy(tmp_path)
    _write(tmp_path / "audio" / "kick" / "k.wav", "kick", 0.5, 16000, 1, {}, 0)
    res = _run(folder, "--stage", "0", "--stop-stage", "0",
               "--data-args", f"{tmp_path / 'audio'} --task drum")  # fmt: skip
    assert res.returncode == 2, res.stderr
    assert "config error: --task 'drum'" in res.stderr and "music_instrument" in res.stderr
    assert "Traceback" not in res.stderr
    assert "stage 0 failed (status 2)" in res.stderr
    res = _run(folder, "--stage", "0", "--stop-stage", "0", "--data-args", str(tmp_path / "nope"))
    assert res.returncode == 1 and "no such folder or listing file" in res.stderr


def test_model_never_writes_into_the_model_dir(tmp_path):
    folder = _recipe_copy(tmp_path)
    man = folder / "data" / "manifests"
    man.mkdir(parents=True)
    for split in ("train", "dev", "test"):
        (man / f"folder_cuts_{split}.jsonl.gz").write_bytes(b"")
    model = folder / "exp" / "mine"
    model.mkdir(parents=True)
    res = _run(folder, "--model", "exp/mine", "--exp-dir", "exp/mine", "--stage", "1")
    assert res.returncode == 1 and "results never go into the model" in res.stderr, res.stderr
    res = _run(folder, "--model", "exp/none", "--stage", "5")
    assert res.returncode == 1 and "--model exp/none: no such run" in res.stderr


def test_label_template_captions_are_flagged():
    from toolkit.evaluate.retrieval import label_template_task

    caps = [["dog", "the sound of dog"], ["dog", "the sound of dog"], ["cat", "the sound of cat"]]
    labels = {"sound_class": ["dog", "dog", "cat"], "sound_other": ["a", "b", "a"]}
    assert label_template_task(caps, labels) == "sound_class"
    real = [["a dog barks twice"], ["a dog growls"], ["a cat meows"]]
    assert label_template_task(real, labels) is None
    assert label_template_task(caps[1:], {"sound_class": ["dog", "cat"]}) is None  # no sharing


def test_retrieval_evaluator_marks_label_captions():
    from toolkit.evaluate.embeddings import EmbeddingSet
    from toolkit.evaluate.evaluators import Retrieval

    emb = torch.nn.functional.normalize(torch.randn(4, 8), dim=1)
    es = EmbeddingSet(
        cut_ids=list("abcd"), pooled=emb, audio_emb=emb,
        labels={"sound_class": ["x", "x", "y", "y"]},
        captions=[["the sound of x"]] * 2 + [["the sound of y"]] * 2,
    )  # fmt: skip

    def text_fn(texts):
        return torch.nn.functional.normalize(torch.randn(len(texts), 8), dim=1)

    rows = Retrieval()("m", {"test": es}, text_fn)
    assert rows and all("sound_class" in r["not_meaningful"] for r in rows)
    es.captions = [["one"], ["two"], ["three"], ["four"]]
    assert not any(r.get("not_meaningful") for r in Retrieval()("m", {"test": es}, text_fn))


@pytest.mark.timeout(900)
def test_adapt_an_exported_model_reports_before_and_after(trained, tmp_path):
    """--adapt: continue pretraining an exported model on new data (a CSV listing), then one
    before/after table on that data and on the first run's data (forgetting)."""
    assert trained["res"].returncode == 0, "the training run failed"
    first = trained["folder"]
    export = tmp_path / "exported"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [
        sys.executable,
        "-m",
        "toolkit.bin.export",
        str(first / "exp" / "contrastive"),
        str(export),
    ]
    assert subprocess.run(cmd, env=env, capture_output=True).returncode == 0
    clips = tmp_path / "clips"
    _write_listing(clips, "", per_label=6, seed=700)
    task = tmp_path / "first_data.yaml"  # the data the model was first trained on
    d = first / "data"
    probe_only = "eval: {baselines: [], evaluators: [{name: probe}]}\n"
    task.write_text(
        f"data: {{train: {d}/cuts_train.jsonl.gz, dev: {d}/cuts_dev.jsonl.gz, "
        f"test: {d}/cuts_test.jsonl.gz}}\n" + probe_only
    )
    (tmp_path / "probe_only.yaml").write_text(probe_only)
    folder = _recipe_copy(tmp_path / "second")
    train_args = "train.max_steps=3 train.save_every=3 data.max_duration=20 data.num_workers=0"
    res = _run(
        folder, "--adapt", str(export), "--stage", "0", "--stop-stage", "5",
        "--data-args", f"{clips / 'listing.csv'} --task sound_class",
        "--train-args", f"{train_args} train.progress=false", "--eval-tasks", str(task),
        "--eval-config", str(tmp_path / "probe_only.yaml"), timeout=600,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "[stage 2] skip: --adapt" in res.stdout and "[stage 3] skip: --adapt" in res.stdout
    run = folder / "exp" / "adapt_exported"
    log = (run / "train.log").read_text()
    assert f"continuing from {export}" in log and "0 missing, 0 unexpected" in log
    assert "0 missing, 0 unexpected" in (run / "load_report.txt").read_text()  # beside the run
    assert (run / "eval_before" / "load_report.txt").is_file()
    for sub in ("eval", "eval_before", "eval_first_data", "eval_before_first_data"):
        assert (run / sub / "results.csv").is_file(), sub
    table = (run / "before_after.md").read_text()
    assert "| own data | probe (mean pool) | sound_class | acc |" in table
    assert "| first_data | probe (mean pool) | sound_class | acc |" in table
