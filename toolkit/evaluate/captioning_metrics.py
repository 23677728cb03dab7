"""Captioning metrics: BLEU-1..4, METEOR, ROUGE-L, CIDEr-D, SPICE and SPIDEr via pycocoevalcap.

``score_captions(predictions, references)`` tokenises every caption with the Stanford PTB
tokenizer jar shipped in pycocoevalcap (lower-cased, punctuation tokens removed, as the COCO
caption evaluation does) and then scores with pycocoevalcap's BLEU, ROUGE-L and CIDEr scorers (its
CIDEr is CIDEr-D: clipped n-gram counts, Gaussian length penalty σ=6, ×10, IDF from the
references being scored). METEOR and SPICE run pycocoevalcap's jars in our own subprocesses
(temporary files in a private directory, time limits), so nothing is written into the installed
package and nothing is ever downloaded.

SPICE needs the Stanford CoreNLP 3.6.0 jars (``stanford-corenlp-3.6.0.jar`` and
``stanford-corenlp-3.6.0-models.jar``), which pycocoevalcap would download on first use. We
never download: pass ``spice_models=DIR`` holding them (or put them in pycocoevalcap's
``spice/lib``); otherwise SPICE and SPIDEr are ``None`` and ``result["unavailable"]`` says why.
A metric whose Java process fails or times out is reported the same way. Requires Java (≥ 8) on
``PATH`` for the tokenizer; see docs/evaluation_captioning.md.
"""

from __future__ import annotations

import json
import logging
import math
import queue
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Hashable, Iterable, Mapping, Sequence
from pathlib import Path

log = logging.getLogger(__name__)

BLEU = ("BLEU_1", "BLEU_2", "BLEU_3", "BLEU_4")
METRICS = (*BLEU, "METEOR", "ROUGE_L", "CIDEr-D", "SPICE", "SPIDEr")
CORENLP_JARS = ("stanford-corenlp-3.6.0.jar", "stanford-corenlp-3.6.0-models.jar")
SPICE_JAVA_MEMORY = "8G"  # -Xmx of the SPICE JVM (pycocoevalcap's value)
METEOR_JAVA_MEMORY = "2G"


class MetricUnavailable(RuntimeError):
    """A metric cannot be computed here; the message is the reason reported to the caller."""


def _package_dir() -> Path:
    try:
        import pycocoevalcap
    except ImportError as e:  # pragma: no cover - exercised only without the extra
        raise ImportError(
            "captioning metrics need pycocoevalcap: pip install -e '.[metrics]'"
        ) from e
    return Path(next(iter(pycocoevalcap.__path__)))


def _java() -> str:
    java = shutil.which("java")
    if java is None:
        raise RuntimeError(
            "captioning metrics need Java on PATH (the PTB tokenizer, METEOR and SPICE are jars): "
            "install a JRE, e.g. apt-get install default-jre-headless (tools/install.sh does)"
        )
    return java


def _java_error(stderr: bytes | str) -> str:
    """The telling line of a Java process's stderr (the first exception/error line, else the
    last line), at most 300 characters."""
    text = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else stderr
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        return "no error output"
    hits = [ln for ln in lines if "Exception" in ln or "Error" in ln]
    return (hits[0] if hits else lines[-1])[:300]


def _one_line(text: str) -> str:
    """Every line break (incl. Unicode ones) → a space: one caption is one tokenizer line."""
    return " ".join(text.splitlines())


def ptb_tokenize(sentences: Sequence[str], timeout: float = 300.0) -> list[str]:
    """Stanford PTB tokenisation as in the COCO caption evaluation: lower-cased tokens joined by
    spaces, punctuation tokens dropped. One output per input (empty stays empty)."""
    from pycocoevalcap.tokenizer.ptbtokenizer import PUNCTUATIONS, STANFORD_CORENLP_3_4_1_JAR

    if not sentences:
        return []
    jar = _package_dir() / "tokenizer" / STANFORD_CORENLP_3_4_1_JAR
    drop = set(PUNCTUATIONS)
    with tempfile.TemporaryDirectory(prefix="ptb_") as tmp:
        src = Path(tmp) / "captions.txt"
        src.write_text("".join(_one_line(s) + "\n" for s in sentences), encoding="utf-8")
        cmd = [_java(), "-cp", str(jar), "edu.stanford.nlp.process.PTBTokenizer"]
        cmd += ["-preserveLines", "-lowerCase", str(src)]
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"PTB tokenizer did not finish within {timeout:.0f} s") from None
    if proc.returncode != 0:
        raise RuntimeError(f"PTB tokenizer failed ({proc.returncode}): {_java_error(proc.stderr)}")
    lines = proc.stdout.decode("utf-8").split("\n")
    if len(lines) < len(sentences):
        raise RuntimeError(
            f"PTB tokenizer returned {len(lines)} lines for {len(sentences)} captions"
        )
    return [
        " ".join(w for w in ln.rstrip().split(" ") if w and w not in drop)
        for ln in lines[: len(sentences)]
    ]


class _JavaLines:
    """A line-protocol Java subprocess (``-stdio``) with a deadline on every answer."""

    def __init__(self, cmd: list[str], cwd: Path, timeout: float, name: str) -> None:
        self.name, self.timeout = name, timeout
        self.err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            cmd, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.put(raw.decode("utf-8").strip())
        self.lines.put(None)

    def _stderr(self) -> str:
        self.err.seek(0)
        return _java_error(self.err.read())

    def ask(self, line: str, answers: int) -> list[str]:
        """Send one line, return the next ``answers`` output lines."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write((line + "\n").encode("utf-8"))
            self.proc.stdin.flush()
        except OSError as e:
            raise MetricUnavailable(f"{self.name} process died: {e}; {self._stderr()}") from e
        out = []
        for _ in range(answers):
            try:
                got = self.lines.get(timeout=self.timeout)
            except queue.Empty:
                raise MetricUnavailable(
                    f"{self.name} gave no answer within {self.timeout:.0f} s"
                ) from None
            if got is None:
                raise MetricUnavailable(f"{self.name} process ended: {self._stderr()}")
            out.append(got)
        return out

    def close(self) -> None:
        if self.proc.stdin:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        self.proc.kill()
        self.proc.wait()
        self.err.close()


def meteor_score(
    gts: Mapping[Hashable, list[str]], res: Mapping[Hashable, list[str]], timeout: float = 300.0
) -> float:
    """Corpus METEOR 1.5 (``-l en -norm``) of tokenised ``res`` against ``gts`` (pycocoevalcap's
    jar and protocol: per-clip statistics, then one aggregate ``EVAL``)."""
    meteor_dir = _package_dir() / "meteor"
    cmd = [_java(), "-jar", f"-Xmx{METEOR_JAVA_MEMORY}", "meteor-1.5.jar"]
    cmd += ["-", "-", "-stdio", "-l", "en", "-norm"]
    proc = _JavaLines(cmd, meteor_dir, timeout, "METEOR")
    try:
        stats = []
        for k in gts:
            hyp = res[k][0].replace("|||", "").replace("  ", " ")
            refs = [r.replace("|||", "") for r in gts[k]]
            stats += proc.ask(" ||| ".join(("SCORE", *refs, hyp)), 1)
        answers = proc.ask(" ||| ".join(("EVAL", *stats)), len(stats) + 1)
        try:
            return float(answers[-1])
        except ValueError:
            raise MetricUnavailable(f"METEOR answered {answers[-1]!r}") from None
    finally:
        proc.close()


def find_corenlp(spice_models: str | Path | None) -> list[Path]:
    """The two CoreNLP jars SPICE needs, from ``spice_models`` (a directory) or, when None,
    pycocoevalcap's ``spice/lib``. Raises :class:`MetricUnavailable` with the reason."""
    where = Path(spice_models) if spice_models else _package_dir() / "spice" / "lib"
    jars = [where / j for j in CORENLP_JARS]
    missing = [j.name for j in jars if not j.is_file()]
    if missing:
        hint = "" if spice_models else " (no spice_models directory given)"
        raise MetricUnavailable(
            f"SPICE needs the Stanford CoreNLP 3.6.0 jars {', '.join(missing)} in {where}{hint}; "
            "they are never downloaded at run time"
        )
    return jars


def spice_score(
    gts: Mapping[Hashable, list[str]],
    res: Mapping[Hashable, list[str]],
    spice_models: str | Path | None = None,
    timeout: float = 1800.0,
) -> float:
    """Mean SPICE F-score (``All.f``) of tokenised ``res`` against ``gts`` (spice-1.0.jar)."""
    corenlp = find_corenlp(spice_models)
    spice_dir = _package_dir() / "spice"
    keys = list(gts)
    items = [{"image_id": i, "test": res[k][0], "refs": list(gts[k])} for i, k in enumerate(keys)]
    classpath = ":".join([str(spice_dir / "spice-1.0.jar"), str(spice_dir / "lib" / "*")])
    classpath += "".join(f":{j}" for j in corenlp)
    with tempfile.TemporaryDirectory(prefix="spice_") as tmp:
        src, out = Path(tmp) / "in.json", Path(tmp) / "out.json"
        src.write_text(json.dumps(items))
        cmd = [_java(), f"-Xmx{SPICE_JAVA_MEMORY}", "-cp", classpath, "edu.anu.spice.SpiceScorer"]
        cmd += [str(src), "-out", str(out), "-subset", "-silent"]
        try:
            proc = subprocess.run(cmd, cwd=tmp, capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise MetricUnavailable(f"SPICE did not finish within {timeout:.0f} s") from None
        if proc.returncode != 0 or not out.is_file():
            raise MetricUnavailable(f"SPICE failed ({proc.returncode}): {_java_error(proc.stderr)}")
        results = json.loads(out.read_text())

    def f(item: dict) -> float:
        try:
            return float(item["scores"]["All"]["f"])
        except (TypeError, ValueError, KeyError):
            return math.nan

    return sum(f(r) for r in results) / len(results)


def _requested(metrics: Iterable[str]) -> list[str]:
    out: list[str] = []
    for m in metrics:
        names = BLEU if m == "BLEU" else (m,)
        for n in names:
            if n not in METRICS:
                raise ValueError(f"unknown captioning metric {n!r}; known: {', '.join(METRICS)}")
            if n not in out:
                out.append(n)
    return out


def score_captions(
    predictions: Mapping[Hashable, str],
    references: Mapping[Hashable, Sequence[str]],
    metrics: Sequence[str] = METRICS,
    spice_models: str | None = None,
    timeout: float = 600.0,
) -> dict:
    """Corpus-level captioning scores of one predicted caption per clip.

    Args:
        predictions: ``{clip id: caption}``.
        references: ``{clip id: [reference captions]}``, the same ids, each with ≥ 1 caption.
        metrics: names from :data:`METRICS` (``"BLEU"`` means BLEU_1..4).
        spice_models: directory holding the CoreNLP 3.6.0 jars SPICE needs (None: look in
            pycocoevalcap's ``spice/lib``; missing → SPICE/SPIDEr unavailable).
        timeout: seconds allowed to each Java step (tokenizer, METEOR answer, SPICE run).

    Returns:
        ``{metric: float or None for each requested metric, "unavailable": {metric: reason}}``.
        BLEU/ROUGE-L/METEOR/SPICE are in [0, 1], CIDEr-D in [0, 10], SPIDEr = (CIDEr-D + SPICE)/2.
    """
    wanted = _requested(metrics)
    if set(predictions) != set(references):
        only_p = [k for k in predictions if k not in references][:5]
        only_r = [k for k in references if k not in predictions][:5]
        raise ValueError(
            f"predictions and references must have the same ids; only in predictions: {only_p}, "
            f"only in references: {only_r}"
        )
    if not predictions:
        raise ValueError("no captions to score")
    keys = list(predictions)
    for k in keys:
        if isinstance(references[k], str) or not references[k]:
            raise ValueError(f"references[{k!r}] must be a non-empty list of captions")
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    flat = [predictions[k] for k in keys] + [r for k in keys for r in references[k]]
    tokens = ptb_tokenize(flat, timeout)
    res = {k: [tokens[i]] for i, k in enumerate(keys)}
    gts, pos = {}, len(keys)
    for k in keys:
        gts[k] = tokens[pos : pos + len(references[k])]
        pos += len(references[k])

    scores: dict[str, float | None] = {}
    unavailable: dict[str, str] = {}
    need = set(wanted) | ({"CIDEr-D", "SPICE"} if "SPIDEr" in wanted else set())
    if need & set(BLEU):
        bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
        scores.update({name: float(v) for name, v in zip(BLEU, bleu)})
    if "ROUGE_L" in need:
        scores["ROUGE_L"] = float(Rouge().compute_score(gts, res)[0])
    if "CIDEr-D" in need:
        scores["CIDEr-D"] = float(Cider().compute_score(gts, res)[0])
    for name, fn in (
        ("METEOR", lambda: meteor_score(gts, res, timeout)),
        ("SPICE", lambda: spice_score(gts, res, spice_models, timeout)),
    ):
        if name in need:
            try:
                scores[name] = fn()
            except (MetricUnavailable, OSError) as e:
                scores[name], unavailable[name] = None, str(e)
                log.warning("%s unavailable: %s", name, e)
    if "SPIDEr" in need:
        if scores.get("SPICE") is None:
            scores["SPIDEr"] = None
            unavailable["SPIDEr"] = f"needs SPICE: {unavailable.get('SPICE', 'not computed')}"
        else:
            scores["SPIDEr"] = (scores["CIDEr-D"] + scores["SPICE"]) / 2
    out: dict = {m: scores[m] for m in wanted}
    out["unavailable"] = {m: r for m, r in unavailable.items() if m in wanted}
    return out
