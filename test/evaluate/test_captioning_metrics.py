"""Captioning metrics: equal to pycocoevalcap's own scorers on a fixed set, hand-checkable
BLEU/CIDEr-D cases (CIDEr-D re-derived with numpy), SPICE/METEOR unavailable paths (no crash, no
number, a reason), and no download attempted."""

from __future__ import annotations

import math
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip(
    "pycocoevalcap", reason="captioning metrics need the metrics extra (pip install .[metrics])"
)
if shutil.which("java") is None:
    pytest.skip(
        "captioning metrics need Java (tools/install.sh installs it)", allow_module_level=True
    )

import pycocoevalcap  # noqa: E402

from toolkit.evaluate import captioning_metrics as cm  # noqa: E402
from toolkit.evaluate.captioning_metrics import ptb_tokenize, score_captions  # noqa: E402

PREDS = {
    "a": "A dog barks loudly.",
    "b": "rain falls on a tin roof",
    "c": "",
    "d": "Music, with drums!",
    "e": "a man speaks while cars pass by",
}
REFS = {
    "a": ["a dog is barking", "A dog barks loudly!"],
    "b": ["heavy rain on a metal roof"],
    "c": ["birds sing in the morning"],
    "d": ["drums and bass music", "a band plays music\nwith drums"],
    "e": ["a man talks as traffic passes", "a person speaks near a busy road", "cars pass by"],
}
PKG = Path(next(iter(pycocoevalcap.__path__)))


@pytest.fixture(autouse=True)
def no_download(monkeypatch):
    """Any download attempt fails the test."""
    import urllib.request

    from pycocoevalcap.spice import get_stanford_models

    def refuse(*a, **k):
        raise AssertionError(f"download attempted: {a}")

    monkeypatch.setattr(urllib.request, "urlretrieve", refuse)
    monkeypatch.setattr(get_stanford_models, "urlretrieve", refuse)


def test_ptb_tokenize_lines_case_punctuation():
    out = ptb_tokenize(["A Dog, barks!", "", "two\nlines here", "it's 5 o'clock..."])
    assert out[:3] == ["a dog barks", "", "two lines here"]
    assert out[3].startswith("it 's 5")


@pytest.mark.slow
def test_equals_pycocoevalcap_scorers():
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    meteor = Meteor()  # its JVM loads the paraphrase table while ours does
    ours = score_captions(PREDS, REFS, spice_models=None)
    tok = PTBTokenizer()
    gts = tok.tokenize({k: [{"caption": c} for c in v] for k, v in REFS.items()})
    res = tok.tokenize({k: [{"caption": v}] for k, v in PREDS.items()})
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    ref = {f"BLEU_{i + 1}": b for i, b in enumerate(bleu)}
    ref["ROUGE_L"] = Rouge().compute_score(gts, res)[0]
    ref["CIDEr-D"] = Cider().compute_score(gts, res)[0]
    ref["METEOR"] = meteor.compute_score(gts, res)[0]
    for name, value in ref.items():
        assert ours[name] == pytest.approx(float(value), abs=1e-12), name
    assert 0 < ours["BLEU_4"] < ours["BLEU_1"] < 1 and 0 < ours["METEOR"] < 1
    # no CoreNLP jars here: SPICE/SPIDEr are reported unavailable, never a number
    if not all((PKG / "spice" / "lib" / j).is_file() for j in cm.CORENLP_JARS):
        assert ours["SPICE"] is None and ours["SPIDEr"] is None
        assert "stanford-corenlp-3.6.0-models.jar" in ours["unavailable"]["SPICE"]
        assert ours["unavailable"]["SPIDEr"].startswith("needs SPICE")


def test_identical_prediction_gives_bleu_one():
    caps = {"x": "a dog barks at the mailman", "y": "the rain falls on a tin roof"}
    out = score_captions(caps, {k: [v] for k, v in caps.items()}, metrics=["BLEU", "ROUGE_L"])
    for name in ("BLEU_1", "BLEU_2", "BLEU_3", "BLEU_4", "ROUGE_L"):
        assert out[name] == pytest.approx(1.0, abs=1e-6), name
    assert out["unavailable"] == {}
    assert set(out) == {"BLEU_1", "BLEU_2", "BLEU_3", "BLEU_4", "ROUGE_L", "unavailable"}


def numpy_cider_d(preds: dict, refs: dict, sigma: float = 6.0) -> float:
    """CIDEr-D from its definition (Vedantam et al. 2015, as in the COCO evaluation code):
    TF-IDF n-gram vectors (n = 1..4; IDF over the clips' reference sets), hypothesis weights
    clipped by the reference's, Gaussian penalty on the length difference, mean over n and
    references, × 10. Inputs are already tokenised (lower-case, no punctuation)."""
    keys = list(preds)
    grams = lambda s, n: Counter(tuple(s.split()[i : i + n]) for i in range(len(s.split()) - n + 1))  # noqa: E731
    df = Counter()
    for k in keys:
        df.update({g for r in refs[k] for n in range(1, 5) for g in grams(r, n)})
    log_n = np.log(len(keys))

    def vec(s: str, n: int) -> dict:
        return {g: c * (log_n - np.log(max(1.0, df[g]))) for g, c in grams(s, n).items()}

    total = []
    for k in keys:
        c = preds[k]
        per_ref = []
        for r in refs[k]:
            sims = []
            for n in range(1, 5):
                vc, vr = vec(c, n), vec(r, n)
                nc = np.sqrt(sum(v * v for v in vc.values()))
                nr = np.sqrt(sum(v * v for v in vr.values()))
                dot = sum(min(v, vr.get(g, 0.0)) * vr.get(g, 0.0) for g, v in vc.items())
                s = dot / (nc * nr) if nc > 0 and nr > 0 else dot
                sims.append(
                    s * math.exp(-((len(c.split()) - len(r.split())) ** 2) / (2 * sigma**2))
                )
            per_ref.append(np.mean(sims))
        total.append(10.0 * np.mean(per_ref))
    return float(np.mean(total))


def test_cider_d_matches_numpy_formula():
    preds = {
        "p": "a dog barks at the mailman",
        "q": "rain falls on a roof",
        "r": "a man plays the guitar softly",
    }
    refs = {
        "p": ["a dog barks at the mailman"],
        "q": ["the rain falls on a tin roof", "heavy rain on a roof"],
        "r": ["someone plays guitar", "a man strums a guitar slowly and softly"],
    }
    out = score_captions(preds, refs, metrics=["CIDEr-D"])
    assert out["CIDEr-D"] == pytest.approx(numpy_cider_d(preds, refs), rel=1e-9)
    # a perfect match of every clip on a corpus of distinct sentences: 10 (every n-gram order
    # has a non-zero TF-IDF vector, each cosine is 1, no length penalty)
    perfect = score_captions(preds, {k: [v] for k, v in preds.items()}, metrics=["CIDEr-D"])
    assert perfect["CIDEr-D"] == pytest.approx(10.0, abs=1e-9)


def test_spice_unavailable_paths(tmp_path):
    out = score_captions(PREDS, REFS, metrics=["SPICE", "SPIDEr"], spice_models=str(tmp_path))
    assert out["SPICE"] is None and out["SPIDEr"] is None
    assert str(tmp_path) in out["unavailable"]["SPICE"]
    assert "stanford-corenlp-3.6.0.jar" in out["unavailable"]["SPICE"]
    assert out["unavailable"]["SPIDEr"] == f"needs SPICE: {out['unavailable']['SPICE']}"
    # jars present but unusable: SPICE's own failure is the reason, still no crash
    for j in cm.CORENLP_JARS:
        (tmp_path / j).write_bytes(b"not a jar")
    out = score_captions(PREDS, REFS, metrics=["SPICE"], spice_models=str(tmp_path))
    assert out["SPICE"] is None and out["unavailable"]["SPICE"].startswith("SPICE failed")
    assert not (PKG / "spice" / "tmp").exists() or not any((PKG / "spice" / "tmp").iterdir())


def test_meteor_failure_and_timeout_are_reported(monkeypatch):
    monkeypatch.setattr(cm, "METEOR_JAVA_MEMORY", "bogus")  # the JVM refuses to start
    out = score_captions({"a": "a dog"}, {"a": ["a dog"]}, metrics=["METEOR", "BLEU_1"])
    assert out["METEOR"] is None and "METEOR process" in out["unavailable"]["METEOR"]
    assert out["BLEU_1"] == pytest.approx(1.0, abs=1e-6)
    monkeypatch.undo()
    with pytest.raises(cm.MetricUnavailable, match="no answer within"):
        cm.meteor_score({"a": ["a dog"]}, {"a": ["a dog"]}, timeout=0.05)


def test_input_errors():
    with pytest.raises(ValueError, match="same ids"):
        score_captions({"a": "x"}, {"b": ["x"]})
    with pytest.raises(ValueError, match="non-empty list"):
        score_captions({"a": "x"}, {"a": []})
    with pytest.raises(ValueError, match="unknown captioning metric 'CIDEr'"):
        score_captions({"a": "x"}, {"a": ["x"]}, metrics=["CIDEr"])
