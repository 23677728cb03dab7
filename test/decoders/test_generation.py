"""Generation: greedy / beam / nucleus against each other, brute force and one-clip-at-a-time."""

from __future__ import annotations

import itertools

import pytest
import torch

from toolkit.decoders.generation import (
    beam_search,
    generate,
    generate_text,
    greedy_search,
    nucleus_sampling,
    sequence_log_probs,
)
from toolkit.decoders.transformer import TransformerDecoder

BOS, EOS, PAD = 2, 3, 0
E = 8


def tiny_decoder(vocab: int = 9, seed: int = 0) -> TransformerDecoder:
    torch.manual_seed(seed)
    return TransformerDecoder(
        vocab, E, dim=16, num_layers=2, num_heads=2, ff_dim=32, dropout=0.0, max_len=16
    ).eval()


def encoder_out(b: int = 5, t: int = 6, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    lens = torch.randint(1, t + 1, (b,), generator=g)
    lens[0] = t
    return torch.randn(b, t, E, generator=g), lens


def test_greedy_matches_a_stepwise_reference():
    dec = tiny_decoder()
    enc, lens = encoder_out()
    got = greedy_search(dec, enc, lens, BOS, EOS, max_len=8)
    for i, seq in enumerate(got):  # re-decode with full forwards, one clip at a time
        ids = [BOS]
        while len(ids) <= 8:
            logits = dec(torch.tensor([ids]), enc[i : i + 1], lens[i : i + 1])[0, -1]
            logits[[BOS, PAD]] = float("-inf")
            ids.append(int(logits.argmax()))
            if ids[-1] == EOS:
                break
        ref = ids[1:-1] if ids[-1] == EOS else ids[1:]
        assert seq == ref
        assert BOS not in seq and PAD not in seq and EOS not in seq and len(seq) <= 8


def test_beam_of_one_is_greedy():
    dec = tiny_decoder()
    enc, lens = encoder_out()
    greedy = greedy_search(dec, enc, lens, BOS, EOS, max_len=8)
    assert beam_search(dec, enc, lens, BOS, EOS, beam_size=1, max_len=8, length_penalty=0.0) == (
        greedy
    )


class TableDecoder(torch.nn.Module):
    """Stand-in decoder whose next-token logits are arbitrary (seeded random) per clip and
    prefix: no smoothness for a search to exploit. Clip identity: ``enc[i, 0, 0]``."""

    def __init__(self, vocab: int, sharpness: float = 1.5, max_len: int = 16) -> None:
        super().__init__()
        self.vocab, self.sharpness, self.max_len = vocab, sharpness, max_len

    def _logits(self, clip: torch.Tensor, prefix: list[int]) -> torch.Tensor:
        seed = hash((round(float(clip[0, 0]), 4), tuple(prefix))) % 2**31
        return torch.randn(self.vocab, generator=torch.Generator().manual_seed(seed)) * (
            self.sharpness
        )

    def forward(self, tokens, enc, enc_lens, causal=True):
        rows = tokens.tolist()
        return torch.stack(
            [
                torch.stack([self._logits(enc[i], r[: j + 1]) for j in range(len(r))])
                for i, r in enumerate(rows)
            ]
        )

    class Cache:
        def __init__(self, enc):
            self.enc, self.prefixes = enc, [[] for _ in range(len(enc))]

        def reorder(self, index):
            idx = index.tolist()
            self.enc, self.prefixes = self.enc[index], [list(self.prefixes[i]) for i in idx]

    def init_cache(self, enc, enc_lens):
        return self.Cache(enc)

    def step(self, tokens, cache):
        out = []
        for i, new in enumerate(tokens.tolist()):
            row = []
            for t in new:
                cache.prefixes[i].append(t)
                row.append(self._logits(cache.enc[i], cache.prefixes[i]))
            out.append(torch.stack(row))
        return torch.stack(out)


def test_beam_never_scores_below_greedy_and_sometimes_above():
    better = 0
    cases = [(TableDecoder(9), 0)] + [(tiny_decoder(seed=s), s) for s in range(3)]
    for dec, seed in cases:
        enc, lens = encoder_out(b=8, seed=seed + 10)
        greedy = greedy_search(dec, enc, lens, BOS, EOS, max_len=6)
        beam = beam_search(dec, enc, lens, BOS, EOS, beam_size=4, max_len=6, length_penalty=0.0)
        s_g = sequence_log_probs(dec, enc, lens, greedy, BOS, EOS, max_len=6)
        s_b = sequence_log_probs(dec, enc, lens, beam, BOS, EOS, max_len=6)
        assert bool((s_b >= s_g - 1e-5).all()), (s_b, s_g)
        better += int((s_b > s_g + 1e-4).sum())
    assert better >= 4


def brute_force(dec, enc, lens, max_len, alpha, allowed):
    """Best sequence of every clip by enumerating all (EOS-ended or max_len-long) sequences."""
    words = [t for t in allowed if t != EOS]
    cands = [list(p) for n in range(max_len) for p in itertools.product(words, repeat=n)]
    cands += [list(p) for p in itertools.product(words, repeat=max_len)]
    best = []
    for i in range(len(enc)):
        e, n = enc[i : i + 1].expand(len(cands), -1, -1), lens[i : i + 1].expand(len(cands))
        raw = sequence_log_probs(dec, e, n, cands, BOS, EOS, max_len=max_len)
        length = torch.tensor([min(len(c) + 1, max_len) for c in cands], dtype=torch.float)
        best.append(cands[int((raw / length**alpha).argmax())])
    return best


@pytest.mark.parametrize("alpha", [0.0, 1.0, -0.5])
@pytest.mark.parametrize("kind", ["table", "transformer"])
def test_wide_beam_finds_the_exact_optimum(kind, alpha):
    """Vocabulary 7 with PAD/BOS banned: 5 allowed ids, 4 of them not EOS; a beam of 64 keeps
    every hypothesis up to max_len 3, so it must return the brute-force best sequence."""
    dec = TableDecoder(7) if kind == "table" else tiny_decoder(vocab=7, seed=3)
    enc, lens = encoder_out(b=8, seed=4)
    ref = brute_force(dec, enc, lens, 3, alpha, allowed=[1, EOS, 4, 5, 6])
    got = beam_search(dec, enc, lens, BOS, EOS, beam_size=64, max_len=3, length_penalty=alpha)
    assert got == ref
    if kind == "table":  # the optimum is not what greedy finds (the test has teeth)
        assert ref != greedy_search(dec, enc, lens, BOS, EOS, max_len=3)
        assert len({len(s) for s in ref}) > 1


def test_batched_equals_one_at_a_time_with_padding_garbage():
    dec = tiny_decoder()
    enc, lens = encoder_out(b=4)
    pad = torch.arange(enc.shape[1])[None, :, None] >= lens[:, None, None]
    noisy = torch.where(pad, 50 * torch.randn_like(enc), enc)
    for fn, kw in (
        (greedy_search, {}),
        (beam_search, {"beam_size": 3}),
        (beam_search, {"beam_size": 3, "length_penalty": 0.0}),
        (nucleus_sampling, {"top_p": 0.0}),
    ):
        batched = fn(dec, noisy, lens, BOS, EOS, max_len=7, **kw)
        single = [
            fn(dec, enc[i : i + 1, : int(lens[i])], lens[i : i + 1], BOS, EOS, max_len=7, **kw)[0]
            for i in range(len(enc))
        ]
        assert batched == single, fn.__name__


def test_nucleus_limits():
    dec = tiny_decoder()
    enc, lens = encoder_out()
    greedy = greedy_search(dec, enc, lens, BOS, EOS, max_len=8)
    assert nucleus_sampling(dec, enc, lens, BOS, EOS, max_len=8, top_p=1e-6, seed=0) == greedy
    a = nucleus_sampling(dec, enc, lens, BOS, EOS, max_len=8, top_p=1.0, seed=5)
    assert a == nucleus_sampling(dec, enc, lens, BOS, EOS, max_len=8, top_p=1.0, seed=5)
    hot = [nucleus_sampling(dec, enc, lens, BOS, EOS, 8, 1.0, 5.0, seed=s) for s in range(3)]
    assert any(h != greedy for h in hot)


def test_nucleus_first_token_distribution():
    """One step from one clip, many rows: frequencies follow the renormalised nucleus."""
    dec = tiny_decoder()
    enc, lens = encoder_out(b=1)
    n = 4000
    e, ln = enc.expand(n, -1, -1), lens.expand(n)
    logits = dec(torch.tensor([[BOS]]), enc, lens)[0, -1]
    logits[[BOS, PAD]] = float("-inf")
    p = logits.softmax(-1)
    first = lambda s: s[0] if s else EOS  # noqa: E731
    for top_p in (1.0, 0.6):
        out = nucleus_sampling(dec, e, ln, BOS, EOS, max_len=1, top_p=top_p, seed=0)
        freq = torch.bincount(torch.tensor([first(s) for s in out]), minlength=len(p)) / n
        sp, order = p.sort(descending=True)
        keep = order[(sp.cumsum(0) - sp) < top_p]
        want = torch.zeros_like(p)
        want[keep] = p[keep] / p[keep].sum()
        assert (freq - want).abs().max() < 0.04, (top_p, freq, want)


@torch.no_grad()
def test_max_len_and_sequence_scores():
    dec = tiny_decoder()
    enc, lens = encoder_out()
    out = greedy_search(dec, enc, lens, BOS, EOS, max_len=2)
    assert all(len(s) <= 2 for s in out)
    # sequence_log_probs equals the sum of per-step log-probs of the cached decoder
    seqs = [[4, 5], [6], [], [7, 8], [1, 4]]
    got = sequence_log_probs(dec, enc, lens, seqs, BOS, EOS, max_len=2)
    for i, s in enumerate(seqs):
        cache = dec.init_cache(enc[i : i + 1], lens[i : i + 1])
        total, prev = 0.0, BOS
        for tok in s + ([EOS] if len(s) < 2 else []):
            logits = dec.step(torch.tensor([[prev]]), cache)[0, -1]
            logits[[BOS, PAD]] = float("-inf")
            total += float(logits.log_softmax(-1)[tok])
            prev = tok
        assert abs(float(got[i]) - total) < 1e-4


def test_dispatch_errors_and_mode_restored():
    dec = tiny_decoder().train()
    enc, lens = encoder_out()
    with pytest.raises(ValueError, match="unknown generation method 'sample'; known: greedy"):
        generate(dec, enc, lens, BOS, EOS, method="sample")
    with pytest.raises(ValueError, match="unknown option 'top_p' for beam generation; known: .*"):
        generate(dec, enc, lens, BOS, EOS, method="beam", top_p=0.5)
    out = generate(dec, enc, lens, BOS, EOS, method="greedy", max_len=4)
    assert dec.training and len(out) == 5


def test_generate_text_with_sentencepiece(tmp_path):
    from toolkit.text.tokenizer import SentencePieceTokenizer, train_sentencepiece

    caps = ["a low steady tone", "a high beeping tone", "beeping, low pitch", "steady middle"] * 5
    tok = SentencePieceTokenizer(str(train_sentencepiece(caps, tmp_path / "spm", vocab_size=30)))
    dec = tiny_decoder(vocab=tok.vocab_size)
    enc, lens = encoder_out(b=3)
    for method in ("greedy", "beam", "nucleus"):
        kw = {"max_len": 5, **({"seed": 0} if method == "nucleus" else {})}
        texts = generate_text(dec, enc, lens, tok, method=method, **kw)
        ids = generate(dec, enc, lens, BOS, EOS, method=method, **kw)
        assert len(texts) == 3 and all(isinstance(t, str) for t in texts)
        assert texts == [tok.decode(s) for s in ids]
