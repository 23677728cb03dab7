"""Batched caption generation with an incremental decoder: greedy, beam search, nucleus sampling.

Every function takes a decoder with ``init_cache(enc, enc_lens)`` and
``step(tokens (B, l), cache) -> logits (B, l, V)`` (e.g.
:class:`toolkit.decoders.transformer.TransformerDecoder`), the encoder output ``enc (B, T, D)``
with valid lengths ``enc_lens (B,)`` and the BOS/EOS ids, and returns one token-id list per clip
(BOS and EOS left out). Decoding starts from BOS and stops at EOS or after ``max_len`` generated
tokens (EOS included; a result of exactly ``max_len`` ids therefore never reached EOS). PAD and
BOS are never generated (their logits are set to -inf before the softmax, so all scores are
log-probabilities over the allowed tokens). The decoder runs in eval mode under ``no_grad``; its
previous mode is restored afterwards.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@contextlib.contextmanager
def _inference(decoder: nn.Module) -> Iterator[None]:
    was_training = decoder.training
    decoder.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        decoder.train(was_training)


def _max_len(decoder: nn.Module, max_len: int) -> int:
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")
    return min(max_len, getattr(decoder, "max_len", max_len))


def _log_probs(logits: Tensor, banned: Sequence[int]) -> Tensor:
    """``(..., V)`` logits → float32 log-probabilities with ``banned`` ids at -inf."""
    logits = logits.float()
    if banned:
        idx = torch.tensor(list(banned), device=logits.device)
        logits = logits.index_fill(-1, idx, float("-inf"))
    return F.log_softmax(logits, dim=-1)


def _banned(bos_id: int, pad_id: int | None) -> list[int]:
    return [bos_id] + ([] if pad_id is None or pad_id == bos_id else [pad_id])


def _sample_loop(
    decoder: nn.Module,
    enc: Tensor,
    enc_lens: Tensor,
    bos_id: int,
    eos_id: int,
    max_len: int,
    pad_id: int | None,
    pick: Callable[[Tensor], Tensor],
) -> list[list[int]]:
    """One token per step for every row: ``pick(log_probs (B, V)) -> ids (B,)``."""
    b = enc.shape[0]
    cache = decoder.init_cache(enc, enc_lens)
    cur = torch.full((b, 1), bos_id, dtype=torch.long, device=enc.device)
    done = torch.zeros(b, dtype=torch.bool, device=enc.device)
    out = []
    banned = _banned(bos_id, pad_id)
    for _ in range(max_len):
        nxt = pick(_log_probs(decoder.step(cur, cache)[:, -1], banned))
        nxt = nxt.masked_fill(done, eos_id)
        out.append(nxt)
        done |= nxt == eos_id
        if bool(done.all()):
            break
        cur = nxt[:, None]
    seqs = torch.stack(out, 1).tolist()
    return [s[: s.index(eos_id)] if eos_id in s else s for s in seqs]


def greedy_search(
    decoder: nn.Module,
    enc: Tensor,
    enc_lens: Tensor,
    bos_id: int,
    eos_id: int,
    max_len: int = 30,
    pad_id: int | None = 0,
) -> list[list[int]]:
    """Most probable next token at every step, batched over the ``B`` clips."""
    with _inference(decoder):
        n = _max_len(decoder, max_len)
        return _sample_loop(
            decoder, enc, enc_lens, bos_id, eos_id, n, pad_id, lambda logp: logp.argmax(-1)
        )


def nucleus_sampling(
    decoder: nn.Module,
    enc: Tensor,
    enc_lens: Tensor,
    bos_id: int,
    eos_id: int,
    max_len: int = 30,
    top_p: float = 0.9,
    temperature: float = 1.0,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    pad_id: int | None = 0,
) -> list[list[int]]:
    """Top-p sampling (Holtzman et al. 2020): sample from the smallest set of most probable tokens
    whose probability (after ``temperature`` scaling) reaches ``top_p``; the most probable token is
    always kept, so ``top_p → 0`` is greedy. Randomness: ``generator`` (on ``enc``'s device), else a
    new one seeded with ``seed``, else torch's global generator.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if not 0.0 <= top_p <= 1.0:
        raise ValueError(f"top_p must be in [0, 1], got {top_p}")
    if generator is None and seed is not None:
        generator = torch.Generator(device=enc.device).manual_seed(seed)

    def pick(logp: Tensor) -> Tensor:
        probs, idx = (logp / temperature).softmax(-1).sort(-1, descending=True)
        drop = probs.cumsum(-1) - probs >= top_p  # mass before this token already reaches top_p
        drop[:, 0] = False
        probs = probs.masked_fill(drop, 0.0)
        choice = torch.multinomial(probs, 1, generator=generator)
        return idx.gather(-1, choice)[:, 0]

    with _inference(decoder):
        return _sample_loop(
            decoder, enc, enc_lens, bos_id, eos_id, _max_len(decoder, max_len), pad_id, pick
        )


def _normalised(score: float, length: int, length_penalty: float) -> float:
    return score / length**length_penalty


def beam_search(
    decoder: nn.Module,
    enc: Tensor,
    enc_lens: Tensor,
    bos_id: int,
    eos_id: int,
    beam_size: int = 4,
    max_len: int = 30,
    length_penalty: float = 1.0,
    pad_id: int | None = 0,
) -> list[list[int]]:
    """Beam search, batched over clips (``B × beam_size`` decoder rows).

    A hypothesis's score is its total log-probability divided by ``length ** length_penalty``
    (``length``: generated tokens, EOS included; 0 → raw log-probability, 1 → per-token mean).
    Each step keeps the ``beam_size`` best unfinished extensions; an extension by EOS among the
    candidates ranked before them is a finished hypothesis. A clip stops when it holds
    ``beam_size`` finished hypotheses and no unfinished one can still beat the worst of them
    (an exact bound, since log-probabilities only decrease); at ``max_len`` the unfinished ones
    compete too. Returns the best hypothesis of each clip.
    """
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")
    max_len = _max_len(decoder, max_len)
    b, k = enc.shape[0], beam_size
    banned = _banned(bos_id, pad_id)
    with _inference(decoder):
        cache = decoder.init_cache(enc.repeat_interleave(k, 0), enc_lens.repeat_interleave(k, 0))
        hist = torch.empty(b * k, 0, dtype=torch.long, device=enc.device)
        cur = torch.full((b * k, 1), bos_id, dtype=torch.long, device=enc.device)
        scores = torch.full((b, k), float("-inf"), device=enc.device)
        scores[:, 0] = 0.0  # all beams start equal: expand only the first
        finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(b)]
        done = [False] * b
        rows = torch.arange(b, device=enc.device)[:, None] * k
        for t in range(max_len):
            logp = _log_probs(decoder.step(cur, cache)[:, -1], banned)  # (B·K, V)
            v = logp.shape[-1]
            cand = (scores.view(-1, 1) + logp).view(b, k * v)
            top_s, top_i = cand.topk(min(2 * k, k * v), dim=1)
            top_s_l, beam_l, tok_l = top_s.tolist(), (top_i // v).tolist(), (top_i % v).tolist()
            hist_l = hist.tolist()
            new_s = [[float("-inf")] * k for _ in range(b)]
            new_beam = [[0] * k for _ in range(b)]
            new_tok = [[eos_id] * k for _ in range(b)]
            length = t + 1
            for i in range(b):
                if done[i]:
                    continue
                n = 0
                for s, beam, tok in zip(top_s_l[i], beam_l[i], tok_l[i]):
                    if s == float("-inf") or n == k:
                        break
                    if tok == eos_id:
                        score = _normalised(s, length, length_penalty)
                        finished[i].append((score, hist_l[i * k + beam]))
                    else:
                        new_s[i][n], new_beam[i][n], new_tok[i][n] = s, beam, tok
                        n += 1
                if length == max_len:  # no more steps: unfinished hypotheses compete as they are
                    for j in range(n):
                        score = _normalised(new_s[i][j], length, length_penalty)
                        finished[i].append(
                            (score, hist_l[i * k + new_beam[i][j]] + [new_tok[i][j]])
                        )
                    done[i] = True
                finished[i] = sorted(finished[i], key=lambda h: -h[0])[:k]
                if n == 0:  # nothing left to extend
                    done[i] = True
                elif not done[i] and len(finished[i]) >= k:
                    best = new_s[i][0]
                    # best normalised score any continuation could reach (length t+2 .. max_len)
                    bound = max(_normalised(best, m, length_penalty) for m in (t + 2, max_len))
                    done[i] = finished[i][-1][0] >= bound
            if all(done):
                break
            sel = (rows + torch.tensor(new_beam, device=enc.device)).view(-1)
            cache.reorder(sel)
            cur = torch.tensor(new_tok, device=enc.device).view(-1, 1)
            hist = torch.cat([hist.index_select(0, sel), cur], dim=1)
            scores = torch.tensor(new_s, device=enc.device)
    return [max(f, key=lambda h: h[0])[1] if f else [] for f in finished]


METHODS: dict[str, Callable[..., list[list[int]]]] = {
    "greedy": greedy_search,
    "beam": beam_search,
    "nucleus": nucleus_sampling,
}


def generate(
    decoder: nn.Module,
    enc: Tensor,
    enc_lens: Tensor,
    bos_id: int,
    eos_id: int,
    method: str = "beam",
    **opts: Any,
) -> list[list[int]]:
    """Dispatch to ``greedy`` / ``beam`` / ``nucleus`` with that function's keyword options."""
    if method not in METHODS:
        raise ValueError(f"unknown generation method {method!r}; known: {', '.join(METHODS)}")
    fn = METHODS[method]
    allowed = [
        n
        for n in inspect.signature(fn).parameters
        if n not in ("decoder", "enc", "enc_lens", "bos_id", "eos_id")
    ]
    for name in opts:
        if name not in allowed:
            raise ValueError(
                f"unknown option {name!r} for {method} generation; known: {', '.join(allowed)}"
            )
    return fn(decoder, enc, enc_lens, bos_id, eos_id, **opts)


def generate_text(
    decoder: nn.Module,
    enc: Tensor,
    lens: Tensor,
    tokenizer: Any,
    method: str = "beam",
    **opts: Any,
) -> list[str]:
    """Captions for encoder output ``(B, T, D)`` / lengths ``(B,)``, decoded with ``tokenizer``
    (its ``bos_id``/``eos_id``/``pad_id`` are used)."""
    opts.setdefault("pad_id", getattr(tokenizer, "pad_id", 0))
    ids = generate(decoder, enc, lens, tokenizer.bos_id, tokenizer.eos_id, method, **opts)
    return [tokenizer.decode(s) for s in ids]


def sequence_log_probs(
    decoder: nn.Module,
    enc: Tensor,
    enc_lens: Tensor,
    seqs: Sequence[Sequence[int]],
    bos_id: int,
    eos_id: int,
    max_len: int = 30,
    pad_id: int | None = 0,
) -> Tensor:
    """Total log-probability ``(B,)`` of generated sequences (as returned by the functions above,
    under the same ``max_len``): ``seq`` followed by EOS, or ``seq`` alone when it holds
    ``max_len`` tokens (it never ended). One teacher-forced forward; scores beams and samples."""
    max_len = _max_len(decoder, max_len)
    targets = [list(s) + ([eos_id] if len(s) < max_len else []) for s in seqs]
    n = max(len(t) for t in targets)
    fill = 0 if pad_id is None else pad_id
    inp = torch.full((len(seqs), n), fill, dtype=torch.long, device=enc.device)
    tgt = torch.full((len(seqs), n), -1, dtype=torch.long, device=enc.device)
    for i, t in enumerate(targets):
        row = [bos_id, *t][: len(t)]
        inp[i, : len(row)] = torch.tensor(row)
        tgt[i, : len(t)] = torch.tensor(t)
    with _inference(decoder):
        logp = _log_probs(decoder(inp, enc, enc_lens), _banned(bos_id, pad_id))
    picked = logp.gather(-1, tgt.clamp(min=0)[..., None])[..., 0]
    return picked.masked_fill(tgt < 0, 0.0).sum(-1)
