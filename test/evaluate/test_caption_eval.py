"""Captioning in stage 5: the most-frequent-caption reference, the caption probe (a fresh decoder
on frozen frames) learning caption identity from frames but not from noise, determinism, frame
extraction without padding, and an evaluate.py run writing the captioning rows."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from toolkit.config import ConfigError
from toolkit.evaluate.captioning import (
    BASELINE_MODEL,
    PROBE_GROUP,
    CaptionProbe,
    caption_examples,
    caption_rows,
    generate_from_frames,
    most_frequent_caption,
    normalise_caption,
    train_probe_decoder,
)
from toolkit.evaluate.embeddings import EmbeddingSet, extract, extract_models
from toolkit.evaluate.heads.fit import FitSchedule
from toolkit.registry import DECODERS, EVALUATORS
from toolkit.text.tokenizer import SentencePieceTokenizer, train_sentencepiece

pytest.importorskip(
    "pycocoevalcap", reason="captioning metrics need the metrics extra (pip install .[metrics])"
)
needs_java = pytest.mark.skipif(shutil.which("java") is None, reason="captioning metrics need Java")

CAPS = [
    "a dog barks loudly",
    "rain falls on a tin roof",
    "a man speaks softly",
    "birds sing in the trees",
]
D = 8
TINY_DECODER = {"name": "transformer", "dim": 32, "num_layers": 1, "num_heads": 2, "ff_dim": 64}
TINY_DECODER.update(dropout=0.0, max_len=32)
FAST_METRICS = ["CIDEr-D", "BLEU_4", "ROUGE_L"]  # no METEOR (its JVM start costs ~10 s)


@pytest.fixture(scope="module")
def tok(tmp_path_factory) -> SentencePieceTokenizer:
    text = CAPS * 5 + [c.capitalize() + "." for c in CAPS]
    path = train_sentencepiece(text, tmp_path_factory.mktemp("spm") / "spm", 60)
    return SentencePieceTokenizer(str(path), max_len=32)


PATTERNS = torch.randn(4, D, generator=torch.Generator().manual_seed(0)) * 2


def synthetic(counts: list[int], informative: bool, seed: int) -> EmbeddingSet:
    """Clips of class k: 4–9 frames of a fixed class pattern + noise (or pure noise), captioned
    with CAPS[k] in two spellings."""
    g = torch.Generator().manual_seed(seed)
    frames, caps, ids = [], [], []
    for k, n in enumerate(counts):
        for j in range(n):
            noise = torch.randn(int(torch.randint(4, 10, (1,), generator=g)), D, generator=g)
            x = PATTERNS[k] + 0.5 * noise if informative else noise
            frames.append(x.half())
            caps.append([CAPS[k], CAPS[k].capitalize() + "."])
            ids.append(f"s{seed}-{k}-{j}")
    return EmbeddingSet(ids, torch.zeros(len(ids), 1), None, {}, caps, extra={"frames": frames})


def splits_for(informative: bool) -> dict[str, EmbeddingSet]:
    return {
        "train": synthetic([12, 8, 8, 8], informative, 1),
        "dev": synthetic([2, 2, 2, 2], informative, 2),
        "test": synthetic([5, 5, 5, 5], informative, 3),
    }


def probe(tok, **kw) -> CaptionProbe:
    kw = {
        "decoder": TINY_DECODER,
        "steps": 300,
        "batch_size": 16,
        "lr": 3e-3,
        "warmup_steps": 10,
        "beam_size": 2,
        "metrics": FAST_METRICS,
        "device": "cpu",
        **kw,
    }
    return EVALUATORS.build({"name": "caption_probe", **kw}, "eval.evaluators[0]", tokenizer=tok)


def value(rows: list[dict], model: str, metric: str) -> float | None:
    (r,) = [r for r in rows if r["model"] == model and r["metric"] == metric]
    return r["value"]


def test_most_frequent_caption_normalises_for_counting():
    caps = ["A dog barks.", "rain", "a dog  barks", "Rain!", "a DOG barks", "rain", "birds"]
    # "a dog barks" ×3 vs "rain" ×3: the tie goes to the first seen; the most frequent spelling
    # of the winner is returned (each spelling once here: the first seen)
    assert most_frequent_caption(caps) == "A dog barks."
    assert most_frequent_caption(caps + ["Rain"]) == "rain"
    assert normalise_caption("  A dog,  barks!\n") == "a dog barks"
    with pytest.raises(ValueError):
        most_frequent_caption(["", "  ", "!"])


@needs_java
def test_probe_learns_captions_from_frames_not_from_noise(tok):
    ev = probe(tok)
    rows = ev("enc", splits_for(True)) + ev.finish()
    assert {r["group"] for r in rows} == {PROBE_GROUP}
    assert {r["model"] for r in rows} == {"enc", BASELINE_MODEL}
    good, base = value(rows, "enc", "CIDEr-D"), value(rows, BASELINE_MODEL, "CIDEr-D")
    # the baseline answers class 0's caption: right for a quarter of the test clips
    assert 150 < base < 400
    assert good > 900 and good > 2.5 * base  # every caption right → CIDEr-D 1000 (×100)
    assert value(rows, "enc", "BLEU_4") > 90

    noise = probe(tok)
    rows = noise("noise", splits_for(False)) + noise.finish()
    assert value(rows, "noise", "CIDEr-D") < 1.25 * value(rows, BASELINE_MODEL, "CIDEr-D")


def test_probe_is_deterministic_and_respects_lengths(tok, monkeypatch):
    sp = splits_for(True)
    ex = caption_examples(sp["train"].captions, tok, max_tokens=31)
    assert len(ex) == 2 * len(sp["train"].cut_ids) and all(e[1][0] == tok.bos_id for e in ex)
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        dec = DECODERS.build(TINY_DECODER, vocab_size=tok.vocab_size, encoder_dim=D)
        fit = FitSchedule(40, 8, 3e-3, warmup_steps=5, seed=5)
        losses = train_probe_decoder(dec, sp["train"].extra["frames"], ex, fit)
        caps = generate_from_frames(
            dec, sp["test"].extra["frames"], tok, 7, method="beam", beam_size=2, max_len=8
        )
        runs.append((losses, caps))
    assert runs[0] == runs[1]
    assert runs[0][0][-1] < 0.6 * runs[0][0][0]
    # padded frames are invisible: one clip alone or in a padded batch gives the same caption
    alone = generate_from_frames(dec, sp["test"].extra["frames"][:1], tok, method="greedy")
    batched = generate_from_frames(dec, sp["test"].extra["frames"][:9], tok, method="greedy")
    assert alone[0] == batched[0]
    # the evaluator leaves the caller's random stream alone
    torch.manual_seed(1)
    expected = torch.rand(3)
    torch.manual_seed(1)
    monkeypatch.setattr(CaptionProbe, "_score", lambda self, model, preds, es: [])  # no Java
    probe(tok, steps=2)("m", sp)
    assert torch.equal(torch.rand(3), expected)


def test_config_errors(tok):
    with pytest.raises(ConfigError, match="tokenizer"):
        EVALUATORS.build({"name": "caption_probe"}, "e")
    with pytest.raises(ConfigError, match=r"caption_probe\.decoder\.depth"):
        probe(tok, decoder={"name": "transformer", "depth": 2})
    with pytest.raises(ConfigError, match=r"captioning\.metrics"):
        EVALUATORS.build({"name": "captioning", "metrics": ["CIDEr"]}, "e")
    with pytest.raises(ConfigError, match=r"e\.tokenizer: unknown key"):
        EVALUATORS.check({"name": "caption_probe", "tokenizer": "x"}, "e", ("tokenizer",))


@needs_java
def test_unavailable_metric_is_none_and_logged_once(tmp_path, caplog):
    preds = {"a": "a dog barks", "b": "rain falls"}
    refs = {"a": ["a dog barks loudly"], "b": ["rain falls on a roof", "heavy rain"]}
    with caplog.at_level(logging.WARNING):
        for _ in range(2):
            rows = caption_rows("m", "g", preds, refs, ["CIDEr-D", "SPIDEr"], str(tmp_path))
            assert value(rows, "m", "SPIDEr") is None and value(rows, "m", "CIDEr-D") > 0
    spice = [r for r in caplog.records if "SPICE" in r.getMessage()]
    assert len(spice) == 1 and "CoreNLP" in spice[0].getMessage()


def tiny_model_cfg(spm: Path) -> dict:
    enc = {"name": "transformer", "dim": 16, "num_layers": 1, "num_heads": 2, "ff_dim": 32}
    enc.update(subsampling_channels=4, dropout=0.0)
    dec = {**TINY_DECODER, "dim": 16, "ff_dim": 32, "max_len": 16}
    return {
        "frontend": {"name": "fbank", "num_mel_bins": 20},
        "encoder": enc,
        "tokenizer": {"name": "sentencepiece", "model": str(spm), "max_len": 16},
        "objective": {"name": "captioning", "label_smoothing": 0.0, "decoder": dec},
    }


def test_frames_extraction_keeps_valid_frames_only(tone_data):
    from lhotse import CutSet

    from toolkit.bin.evaluate import model_features
    from toolkit.model import build_model, build_tokenizer

    cfg = tiny_model_cfg(tone_data["spm"])
    torch.manual_seed(0)
    model = build_model(cfg, build_tokenizer(cfg)).eval()
    cuts = CutSet.from_file(tone_data["test"]).subset(first=6).to_eager()
    small = extract(model_features(model, frames=True), cuts, batch_duration=2.5)
    big = extract(model_features(model, frames=True), cuts, batch_duration=20.0)
    assert "generated" not in small.extra and len(small.extra["frames"]) == 6
    for cut, a, b in zip(cuts, small.extra["frames"], big.extra["frames"]):
        audio = torch.from_numpy(cut.load_audio()[0])[None]
        with torch.no_grad():
            hidden, lens = model.encode(audio, torch.tensor([audio.shape[1]]))
        assert a.dtype == torch.float16 and a.shape == (int(lens[0]), 16) == b.shape
        torch.testing.assert_close(a.float(), hidden[0].float(), atol=2e-2, rtol=1e-2)
        torch.testing.assert_close(a.float(), b.float(), atol=2e-2, rtol=1e-2)
    assert len({f.shape[0] for f in big.extra["frames"]}) > 1  # lengths really differ
    # batches are made of clips sorted by duration; rows still come back in manifest order
    durations = [c.duration for c in cuts]
    assert durations != sorted(durations)
    assert small.cut_ids == big.cut_ids == [c.id for c in cuts]
    torch.testing.assert_close(small.pooled, big.pooled, atol=1e-5, rtol=1e-4)
    # without the flag no frames are kept (the default evaluation costs nothing more); only the
    # caption styles read from the manifest ride along
    plain = extract(model_features(model), cuts, batch_duration=20.0)
    assert set(plain.extra) == {"caption_styles"} and plain.extra["caption_styles"][0] == [
        "short",
        "tags",
    ]


def test_one_pass_for_several_models_equals_one_pass_each(tone_data):
    """``extract_models`` reads the audio once for all models; each model's set is the one
    ``extract`` gives for it alone (rows, frames, labels), and the sets share no list."""
    from lhotse import CutSet

    from toolkit.bin.evaluate import logmel_features, model_features
    from toolkit.model import build_model, build_tokenizer

    cfg = tiny_model_cfg(tone_data["spm"])
    tok = build_tokenizer(cfg)
    torch.manual_seed(0)
    a = build_model(cfg, tok).eval()
    torch.manual_seed(1)
    b = build_model(cfg, tok).eval()
    cuts = CutSet.from_file(tone_data["test"]).subset(first=6).to_eager()
    fns = {
        "a": model_features(a, frames=True),
        "b": model_features(b),
        "logmel": logmel_features(a),
    }
    together = extract_models(fns, cuts, batch_duration=7.0)
    for name, fn in fns.items():
        alone = extract(fn, cuts, batch_duration=7.0)
        got = together[name]
        assert got.cut_ids == alone.cut_ids == [c.id for c in cuts]
        assert torch.equal(got.pooled, alone.pooled)
        assert (got.audio_emb is None) == (alone.audio_emb is None)
        if alone.audio_emb is not None:
            assert torch.equal(got.audio_emb, alone.audio_emb)
        assert got.labels == alone.labels and got.captions == alone.captions
        assert set(got.extra) == set(alone.extra)
        for x, y in zip(got.extra.get("frames", []), alone.extra.get("frames", [])):
            assert torch.equal(x, y)
    assert not torch.equal(together["a"].pooled, together["b"].pooled)  # two real models
    together["a"].captions[0].append("changed")
    assert "changed" not in together["b"].captions[0]


@pytest.mark.slow
@needs_java
def test_evaluate_cli_writes_captioning_rows(tone_data, tmp_path):
    from toolkit.bin import evaluate, train

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    cfg = tiny_model_cfg(tone_data["spm"])
    probe_block = {"name": "caption_probe", "decoder": cfg["objective"]["decoder"], "steps": 30}
    probe_block.update(batch_size=8, lr=3e-3, warmup_steps=5, beam_size=2, max_len=10)
    probe_block.update(metrics=["CIDEr-D", "BLEU_4"], device="cpu")
    own_block = {"name": "captioning", "beam_size": 2, "max_len": 10}
    own_block.update(metrics=["CIDEr-D", "SPIDEr"], spice_models=str(tmp_path))
    cfg.update(
        seed=0,
        optim={"name": "adamw", "lr": 3e-3},
        data={**{s: str(tone_data[s]) for s in ("train", "dev", "test")}, "num_workers": 0},
        train={"max_steps": 4, "progress": False, "log_every": 1, "save_every": 100},
        eval={"evaluators": [{"name": "linear_probe"}, own_block, probe_block]},
    )
    cfg["data"]["max_duration"] = 8.0
    cfg["eval"].update(num_workers=0, batch_duration=20.0)
    (tmp_path / "conf.yaml").write_text(yaml.safe_dump(cfg))
    exp = tmp_path / "exp"
    try:
        assert train.main(["-c", str(tmp_path / "conf.yaml"), "--exp-dir", str(exp)]) == 0
        bad = ["eval.evaluators=[{name: caption_probe, stepz: 3}]"]
        with pytest.raises(ConfigError, match=r"eval\.evaluators\[0\]\.stepz"):
            evaluate.main(["--exp-dir", str(exp), "--out-dir", str(tmp_path / "bad"), *bad])
        assert evaluate.main(["--exp-dir", str(exp)]) == 0
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    from toolkit.evaluate.report import read_results_csv

    rows = read_results_csv(exp / "eval" / "results.csv")
    own = {
        (r["model"], r["metric"]): r["value"] for r in rows if r["group"].endswith("(own decoder)")
    }
    prb = {(r["model"], r["metric"]): r["value"] for r in rows if r["group"] == PROBE_GROUP}
    assert set(own) == {(m, k) for m in ("pretrained", "random_init", BASELINE_MODEL)
                        for k in ("CIDEr-D", "SPIDEr")}  # fmt: skip
    assert set(prb) == {(m, k) for m in ("pretrained", "random_init", BASELINE_MODEL)
                        for k in ("CIDEr-D", "BLEU_4")}  # fmt: skip
    assert own[("pretrained", "SPIDEr")] is None and own[("pretrained", "CIDEr-D")] >= 0
    assert own[(BASELINE_MODEL, "CIDEr-D")] > 0
    assert any(r["group"].startswith("linear probe") for r in rows)
    md = (exp / "eval" / "results.md").read_text()
    assert "captioning (own decoder) | test captions | SPIDEr | - | - | - |" in md
    assert "captioning (probe decoder)" in md and "Captioning scores are ×100" in md
    # the per-domain summary lists only models with linear-probe rows
    assert "| domain | tasks | pretrained | random_init | logmel_stats |\n" in md
