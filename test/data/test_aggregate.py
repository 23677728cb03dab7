"""CaptionStew aggregation: normalisation, merging, leakage, subsets, weights, Shar, stats, CLI."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from lhotse import CutSet

from toolkit.data.aggregate import AggregateConfig, AggregateError, aggregate, discover_sources
from toolkit.data.aggregate.ids import DisjointSet, audio_fingerprint
from toolkit.data.aggregate.mix import (
    interleave,
    stable_hash64,
    subset_ranks,
    subset_sizes,
    weighted_count,
    weighted_stream,
)
from toolkit.data.aggregate.stats import hist_mean_median
from toolkit.data.aggregate.text import (
    TextOptions,
    dedup_captions,
    fold_caption,
    normalize_caption,
)
from toolkit.data.cuts import make_caption_cut
from toolkit.data.leakage import LeakageIndex, ytid_of

SR = 16000


def _audio(path: Path, seed: int, dur: float = 1.0) -> Path:
    """Noise with a seeded random envelope (distinct fingerprints for distinct seeds)."""
    rng = np.random.default_rng(seed)
    n = int(dur * SR)
    env = np.repeat(rng.uniform(0.01, 1.0, size=int(dur * 10) + 1), SR // 10)[:n]
    sf.write(path, (0.3 * env * rng.standard_normal(n)).astype(np.float32), SR)
    return path


# (source, split, cut id, captions, styles, domain, audio_key, orig_id, labels, audio seed)
# fmt: off
CLIPS = [
    ("audiocaps", "train", "ac1", ["A dog barks.", "a dog  barks"], ["short", "short"], "sound",
     "yt:AAAAAAAAAAA:30", "91", {"sound_events": ["dog"]}, 1),
    ("audiocaps", "train", "ac2", ["Rain falls on a roof"], ["short"], "sound",
     "yt:BBBBBBBBBBB:0", "92", {}, 2),
    ("audiocaps", "train", "ac3", ["Birds chirp"], ["short"], "sound",
     "yt:LEAKEDVIDEO:10", "93", {}, 3),
    ("audiocaps", "train", "ac4", ["An engine idles"], ["short"], "sound",
     "yt:CCCCCCCCCCC:5", "94", {}, 4),
    ("audiocaps", "test", "act1", ["A car passes"], ["short"], "sound",
     "yt:TESTTESTTES:0", "95", {}, 5),
    ("wavcaps", "train", "wc1", ["\u201cThe dog is barking loudly.\u201d", "dog, bark"],
     ["detailed", "tags"], "sound", "yt:AAAAAAAAAAA:30", "w1",
     {"sound_events": ["dog", "animal"]}, 1),
    ("wavcaps", "train", "wc2", ["A car passes by"], ["short"], "sound",
     "yt:TESTTESTTES:0", "w2", {}, 5),
    ("wavcaps", "train", "wc3", ["Thunder rumbles"], ["short"], "sound", None, "bl-123", {}, 6),
    ("wavcaps", "train", "wc4", ["\uff30\uff49\uff41\uff4e\uff4f music plays"], ["short"],
     "music", None, "w4", {}, 7),
    ("wavcaps", "train", "wc5", ["Waves crash"], ["short"], "sound", None, "w5", {}, 8),
    ("wavcaps", "train", "wc6", ["A crowd cheers"], ["short"], "sound",
     "yt:DDDDDDDDDDD:0", "w6", {}, 9),
    ("clotho", "train", "cl1", ["Water drips", "water drips slowly"], ["short", "short"],
     "sound", None, "drip.wav", {}, 10),
    ("clotho", "train", "cl2", ["Footsteps on gravel"], ["short"], "sound", None, "steps.wav",
     {}, 11),
    ("clotho", "dev", "cld1", ["A door creaks"], ["short"], "sound", None, "door.wav", {}, 12),
]
# fmt: on


def write_corpus(root: Path) -> Path:
    """Per-source manifests ``<source>_cuts_<split>.jsonl.gz`` of tiny generated clips."""
    audio, manifests = root / "audio", root / "manifests"
    audio.mkdir(parents=True)
    manifests.mkdir()
    by_file: dict[str, list] = {}
    for src, split, cid, caps, styles, dom, key, orig, labels, seed in CLIPS:
        path = _audio(audio / f"{cid}.wav", seed)
        meta = {"audio_key": key, "split": split} if key else {"split": split}
        cut = make_caption_cut(path, cid, caps, styles, dom, src, labels, orig, metadata=meta)
        by_file.setdefault(f"{src}_cuts_{split}", []).append(cut)
    for name, cuts in by_file.items():
        CutSet.from_cuts(cuts).to_file(manifests / f"{name}.jsonl.gz")
    return manifests


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("stew")
    manifests = write_corpus(root)
    evald = root / "eval"
    evald.mkdir()
    ev = _audio(evald / "ev1.wav", 99)
    eval_cut = make_caption_cut(
        ev,
        "mc1",
        ["x"],
        ["short"],
        "sound",
        "musiccaps",
        metadata={"audio_key": "yt:LEAKEDVIDEO:50"},
    )
    CutSet.from_cuts([eval_cut]).to_file(evald / "musiccaps_cuts_test.jsonl.gz")
    blacklist = root / "blacklist.txt"
    blacklist.write_text("# ids to exclude\nbl-123\n\n")
    return {
        "root": root,
        "manifests": manifests,
        "eval": evald / "musiccaps_cuts_test.jsonl.gz",
        "blacklist": blacklist,
    }


@pytest.fixture(scope="module")
def result(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    cfg = AggregateConfig(
        eval_manifests=[corpus["eval"]],
        blacklist=corpus["blacklist"],
        priority=["audiocaps", "wavcaps"],
        fractions=[0.25, 0.5, 1.0],
        counts=[2],
        weights={"audiocaps": 2.0, "clotho": 0.5},
        seed=3,
    )
    return aggregate(corpus["manifests"], out, cfg), out


def _load(path: Path) -> dict:
    return {c.id: c for c in CutSet.from_file(path)}


# --- captions -------------------------------------------------------------------------------


def test_normalize_caption():
    assert normalize_caption("  \u201cＡ dog\u200b   barks\u201d ") == "A dog barks"
    assert normalize_caption("'\"nested quotes\"'") == "nested quotes"
    assert normalize_caption("It's a dog's bark") == "It's a dog's bark"  # inner quotes kept
    assert normalize_caption("A  Dog\tBarks", TextOptions(lowercase=True)) == "a dog barks"
    assert normalize_caption('"kept"', TextOptions(strip_quotes=False)) == '"kept"'
    assert normalize_caption("ﬁne", TextOptions(nfkc=False)) == "ﬁne"
    assert normalize_caption("ﬁne") == "fine"
    assert normalize_caption('  ""  ') == ""
    assert fold_caption("A dog, barking!") == "a dog barking"


def test_dedup_captions_reasons():
    caps = [
        "A dog barks.",
        "A dog barks.",
        "a dog barks",
        "dog barks a",
        "A dog barks loudly",
        '""',
    ]
    styles = ["short"] * 5 + ["tags"]
    srcs = ["x", "y", "y", "z", "z", "z"]
    kept, kst, ksrc, counts = dedup_captions(caps, styles, srcs, TextOptions(near_dup_jaccard=0.9))
    assert kept == ["A dog barks.", "A dog barks loudly"]
    assert ksrc == ["x", "z"] and kst == ["short", "short"]
    assert counts == {"exact": 1, "folded": 1, "jaccard": 1, "empty": 1}
    # a lower threshold also merges the longer one (3/4 = 0.75); None disables the Jaccard test
    kept, _, _, counts = dedup_captions(caps, styles, srcs, TextOptions(near_dup_jaccard=0.75))
    assert kept == ["A dog barks."] and counts["jaccard"] == 2
    kept, _, _, counts = dedup_captions(caps, styles, srcs, TextOptions(near_dup_jaccard=None))
    assert kept == ["A dog barks.", "dog barks a", "A dog barks loudly"] and "jaccard" not in counts
    with pytest.raises(ValueError, match="near_dup_jaccard"):
        TextOptions(near_dup_jaccard=1.5)


# --- identity -------------------------------------------------------------------------------


def test_ids_and_disjoint_set():
    assert ytid_of("yt:--0w1YA1Hm4:30") == "--0w1YA1Hm4"
    assert ytid_of("yt:abc") == "abc" and ytid_of("fs:123") is None and ytid_of(None) is None
    ds = DisjointSet()
    for _ in range(5):
        ds.add()
    ds.union(3, 4)
    ds.union(4, 1)
    assert [ds.find(i) for i in range(5)] == [0, 1, 2, 1, 1] and ds.num_unions == 2
    with pytest.raises(ValueError, match="unknown leakage"):
        LeakageIndex(["nope"])


def test_fingerprint(tmp_path):
    a = _audio(tmp_path / "a.wav", 5, dur=2.0)
    x, _ = sf.read(a)
    sf.write(tmp_path / "b.flac", 0.5 * x, SR)  # same content, other format and gain
    _audio(tmp_path / "c.wav", 6, dur=2.0)
    sf.write(tmp_path / "silent.wav", np.zeros(SR), SR)
    fp = {
        n: audio_fingerprint(make_caption_cut(tmp_path / n, n, ["a"], ["short"], "sound", "s"))
        for n in ("a.wav", "b.flac", "c.wav", "silent.wav")
    }
    assert fp["a.wav"] is not None and fp["a.wav"].startswith("fp:")
    assert fp["a.wav"] == fp["b.flac"] != fp["c.wav"]
    assert fp["silent.wav"] is None


def test_fingerprint_merges_clips_without_audio_key(tmp_path):
    man = tmp_path / "m"
    man.mkdir()
    _audio(tmp_path / "a.wav", 5)
    x, _ = sf.read(tmp_path / "a.wav")
    sf.write(tmp_path / "b.flac", x, SR)
    for src, name, cap in (("one", "a.wav", "a hum"), ("two", "b.flac", "a low hum")):
        cut = make_caption_cut(tmp_path / name, f"{src}1", [cap], ["short"], "sound", src)
        CutSet.from_cuts([cut]).to_file(man / f"{src}_cuts_train.jsonl.gz")
    off = aggregate(man, tmp_path / "off", AggregateConfig())
    assert off.summary["train"]["clips"] == 2
    on = aggregate(man, tmp_path / "on", AggregateConfig(fingerprint=True))
    cuts = _load(on.files["train"])
    assert list(cuts) == ["one1"]
    custom = cuts["one1"].supervisions[0].custom
    assert custom["caption"] == ["a hum", "a low hum"]
    assert custom["caption_source"] == ["one", "two"]


# --- the whole aggregation ------------------------------------------------------------------


def test_merge_across_sources(result):
    res, out = result
    cuts = _load(res.files["train"])
    assert "wc1" not in cuts  # merged into the audiocaps clip (higher priority)
    c = cuts["ac1"].supervisions[0].custom
    assert c["caption"] == ["A dog barks.", "The dog is barking loudly.", "dog, bark"]
    assert c["caption_style"] == ["short", "detailed", "tags"]
    assert c["caption_source"] == ["audiocaps", "wavcaps", "wavcaps"]
    assert c["sound_events"] == ["dog", "animal"]
    assert c["source"] == "audiocaps" and c["orig_id"] == "91"
    assert cuts["ac1"].recording.sources[0].source.endswith("ac1.wav")
    assert cuts["ac1"].supervisions[0].text == "A dog barks."
    assert cuts["wc4"].supervisions[0].custom["caption"] == ["Piano music plays"]  # NFKC
    assert cuts["cl2"].supervisions[0].custom["caption_source"] == ["clotho"]
    st = res.stats["train"].sources
    assert st["wavcaps"].counts["merged_away"] == 1
    assert st["audiocaps"].counts["dup_folded"] == 1  # "a dog  barks"
    # per-source manifests hold only that source's (merged) cuts
    assert set(_load(out / "sources" / "wavcaps_cuts_train.jsonl.gz")) == {"wc4", "wc5", "wc6"}


def test_priority_order_decides_the_owner(corpus, tmp_path):
    cfg = AggregateConfig(sources=["audiocaps", "wavcaps"], priority=["wavcaps"])
    cuts = _load(aggregate(corpus["manifests"], tmp_path, cfg).files["train"])
    assert "wc1" in cuts and "ac1" not in cuts
    c = cuts["wc1"].supervisions[0].custom
    assert c["caption_source"][0] == "wavcaps" and c["caption_source"][-1] == "audiocaps"
    assert c["caption"][0] == "The dog is barking loudly."


def test_leakage_filter(result):
    res, out = result
    cuts = _load(res.files["train"])
    # ac3: YouTube id of a MusicCaps test clip (other start); wc2: audiocaps' own test clip;
    # wc3: blacklisted orig_id
    assert not {"ac3", "wc2", "wc3"} & set(cuts)
    with open(out / "leakage" / "wavcaps_train.tsv") as f:
        rows = {r["cut_id"]: r for r in csv.DictReader(f, delimiter="\t")}
    assert rows["wc2"]["reason"] == "eval:audiocaps_cuts_test:audio_key"
    assert rows["wc3"]["reason"] == "blacklist:orig_id" and rows["wc3"]["matched_id"] == "bl-123"
    with open(out / "leakage" / "audiocaps_train.tsv") as f:
        rows = {r["cut_id"]: r for r in csv.DictReader(f, delimiter="\t")}
    assert rows == {"ac3": rows["ac3"]}
    assert rows["ac3"]["reason"] == "eval:musiccaps_cuts_test:ytid"
    assert rows["ac3"]["matched_id"] == "LEAKEDVIDEO"
    assert res.summary["train"]["leaked"] == 3
    assert res.stats["train"].sources["wavcaps"].counts["leaked"] == 2


def test_leakage_of_a_duplicate_drops_the_whole_group(corpus, tmp_path):
    bl = tmp_path / "bl.txt"
    bl.write_text("w1\n")  # orig_id of the wavcaps copy of ac1
    cfg = AggregateConfig(sources=["audiocaps", "wavcaps"], blacklist=bl)
    res = aggregate(corpus["manifests"], tmp_path / "o", cfg)
    cuts = _load(res.files["train"])
    assert "ac1" not in cuts and "wc1" not in cuts
    text = (tmp_path / "o" / "leakage" / "audiocaps_train.tsv").read_text()
    assert "ac1\tyt:AAAAAAAAAAA:30\t91\tsame_audio_as_leaked" in text


def test_dev_test_aggregated_without_leak_filter(result):
    res, _ = result
    assert set(_load(res.files["dev"])) == {"cld1"}
    assert set(_load(res.files["test"])) == {"act1"}
    assert "dev" in res.stats and "train_0.5" in res.files


def test_nested_stratified_subsets(result):
    res, out = result
    full = _load(res.files["train"])
    half = _load(out / "cuts_train_0.5.jsonl.gz")
    two = _load(out / "cuts_train_n2.jsonl.gz")
    quarter = _load(out / "cuts_train_0.25.jsonl.gz")
    assert len(quarter) == 2 and set(quarter) <= set(half)
    assert set(two) < set(half) < set(full)
    assert len(half) == round(0.5 * len(full)) and len(two) == 2
    assert (out / "cuts_train_1.0.jsonl.gz").is_symlink()
    assert set(_load(out / "cuts_train_1.0.jsonl.gz")) == set(full)
    # stratified: each source contributes its share of the clips up to one
    n_src = {
        s: sum(c.supervisions[0].custom["source"] == s for c in full.values())
        for s in ("audiocaps", "wavcaps", "clotho")
    }
    for s, n in n_src.items():
        got = sum(c.supervisions[0].custom["source"] == s for c in half.values())
        assert abs(got - 0.5 * n) <= 1, (s, got, n)
    assert res.summary["subsets"]["0.5"]["clips"] == len(half)


def test_subset_ranks_nesting_determinism_stratification():
    rng = np.random.default_rng(0)
    sizes = [500, 120, 30]
    ids = [[f"s{i}_{k}" for k in range(n)] for i, n in enumerate(sizes)]
    hashes = [np.array([stable_hash64(7, x) for x in s], dtype=np.uint64) for s in ids]
    ranks = subset_ranks(hashes)
    allr = np.concatenate(ranks)
    assert sorted(allr.tolist()) == list(range(sum(sizes)))  # a permutation
    again = subset_ranks([np.array([stable_hash64(7, x) for x in s], dtype=np.uint64) for s in ids])
    assert all((a == b).all() for a, b in zip(ranks, again, strict=True))
    other = subset_ranks([np.array([stable_hash64(8, x) for x in s], dtype=np.uint64) for s in ids])
    assert any((a != b).any() for a, b in zip(ranks, other, strict=True))
    total = sum(sizes)
    prev: set = set()
    for n in sorted(int(x) for x in rng.integers(1, total, size=20)):
        chosen = {(i, k) for i, r in enumerate(ranks) for k in np.flatnonzero(r < n)}
        assert prev <= chosen and len(chosen) == n
        for i, r in enumerate(ranks):
            assert abs(int((r < n).sum()) - n * sizes[i] / total) <= 1.0
        prev = chosen
    assert subset_sizes(650, [0.04, 1.0], [100, 10**6]) == {
        "0.04": 26,
        "1.0": 650,
        "n100": 100,
        "n1000000": 650,
    }
    with pytest.raises(ValueError):
        subset_sizes(10, [1.5])


def test_interleave_is_deterministic_and_mixed():
    streams = [list(range(100)), list(range(100, 130))]
    a = list(interleave(streams, [100, 30], seed=1))
    assert a == list(interleave(streams, [100, 30], seed=1))
    assert sorted(x for _, x in a) == list(range(130))
    first_half = [i for i, _ in a[:65]]
    assert 8 <= first_half.count(1) <= 22  # about 15 of the second stream in each half


def test_weights(result, tmp_path):
    res, out = result
    weighted = [c.id for c in CutSet.from_file(res.files["train_weighted"])]
    ac = [i for i in weighted if i.startswith("ac")]
    assert sorted(ac) == ["ac1", "ac1_rep1", "ac2", "ac2_rep1", "ac4", "ac4_rep1"]
    assert sum(i.startswith("wc") for i in weighted) == 3
    assert res.summary["weighted_clips"]["clotho"] == sum(i.startswith("cl") for i in weighted)
    mux = json.loads((out / "mux_weights.json").read_text())
    assert mux["audiocaps"]["mux_weight"] == 2.0 * 3 and mux["clotho"]["weight"] == 0.5
    h = {s: mux[s]["hours"] * mux[s]["weight"] for s in mux}
    assert mux["audiocaps"]["hours_share"] == pytest.approx(h["audiocaps"] / sum(h.values()), 1e-4)
    # fractional weights: deterministic subsampling whose count the hashes predict
    path = out / "sources" / "wavcaps_cuts_train.jsonl.gz"
    hs = np.array([stable_hash64(3, c.id) for c in CutSet.from_file(path)], dtype=np.uint64)
    for w in (0.0, 0.5, 1.0, 2.7):
        got = [json.loads(x)["id"] for x in weighted_stream(path, hs, w)]
        assert len(got) == weighted_count(hs, w)
        assert got == [json.loads(x)["id"] for x in weighted_stream(path, hs, w)]
        assert len(set(got)) == len(got)
    assert weighted_count(hs, 2.0) == 2 * len(hs)
    with pytest.raises(AggregateError, match="no training manifest"):
        aggregate(out.parent / "nothing", tmp_path, AggregateConfig(sources=["x"]))


def test_stats_numbers(result):
    res, out = result
    rows = {(r["group"], r["name"]): r for r in res.stats["train"].rows()}
    ac = rows[("source", "audiocaps")]
    assert ac["clips_in"] == 4 and ac["clips"] == 3 and ac["leaked"] == 1
    assert ac["captions_in"] == 5 and ac["captions"] == 5  # 2+1+1 own - 1 dup + 2 merged
    assert ac["hours"] == pytest.approx(3 / 3600, abs=1e-4)
    assert rows[("domain", "music")]["clips"] == 1
    total = rows[("total", "total")]
    assert total["clips"] == 3 + 3 + 2 and total["clips_in"] == 4 + 6 + 2
    # caption lengths (words) of the kept captions, recomputed by hand
    caps = [
        c
        for cut in CutSet.from_file(res.files["train"])
        for c in cut.supervisions[0].custom["caption"]
    ]
    lens = [len(fold_caption(c).split()) for c in caps]
    assert total["captions"] == len(caps)
    assert total["words_mean"] == pytest.approx(np.mean(lens), abs=1e-3)
    assert total["words_median"] == np.median(lens)
    assert total["vocab"] == len({w for c in caps for w in fold_caption(c).split()})
    assert total["style_tags"] == 1 and total["style_detailed"] == 1
    assert hist_mean_median({1: 1, 3: 1}) == (2.0, 2.0)
    md = (out / "stats" / "stats_train.md").read_text()
    assert "| source | audiocaps | 4 | 3 |" in md and "subset 0.5" in md
    with open(out / "stats" / "stats_train.csv") as f:
        assert len(list(csv.DictReader(f))) == len(rows)
    for name in ("hours_per_source_train.png", "caption_length_train.png"):
        assert (out / "stats" / name).read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("fmt", ["flac", "reference"])
def test_shar_round_trip(corpus, tmp_path, fmt):
    cfg = AggregateConfig(
        sources=["clotho", "wavcaps"],
        shar_dir=tmp_path / "shar",
        shar_format=fmt,
        shar_shard_size=2,
    )
    res = aggregate(corpus["manifests"], tmp_path / "out", cfg)
    orig = list(CutSet.from_file(res.files["train"]))
    back = list(CutSet.from_shar(in_dir=tmp_path / "shar"))
    assert [c.id for c in back] == [c.id for c in orig]
    assert len(list((tmp_path / "shar").glob("cuts.*.jsonl.gz"))) == (len(orig) + 1) // 2
    for a, b in zip(orig, back, strict=True):
        assert b.supervisions[0].custom["caption"] == a.supervisions[0].custom["caption"]
        x, y = a.load_audio(), b.load_audio()
        assert x.shape == y.shape and np.allclose(x, y, atol=1e-4)
    has_tar = bool(list((tmp_path / "shar").glob("recording.*.tar")))
    assert has_tar == (fmt == "flac")


def test_cli_end_to_end(corpus, tmp_path, capsys):
    from toolkit.bin.aggregate import main

    out = tmp_path / "cli"
    rc = main([
        "--manifest-dir", str(corpus["manifests"]), "--out-dir", str(out),
        "--eval-manifests", str(corpus["eval"]), "--blacklist", str(corpus["blacklist"]),
        "--weights", "audiocaps=2,wavcaps=1", "--fractions", "0.5,1.0", "--seed", "0",
        "--lowercase", "true", "--near-dup-jaccard", "none",
    ])  # fmt: skip
    assert rc == 0
    printed = capsys.readouterr().out
    assert "## train" in printed and "| source | audiocaps |" in printed
    assert discover_sources(corpus["manifests"]) == ["audiocaps", "clotho", "wavcaps"]
    cuts = _load(out / "cuts_train.jsonl.gz")
    assert cuts["ac1"].supervisions[0].custom["caption"][0] == "a dog barks."
    for name in ("cuts_train_0.5", "cuts_train_weighted", "cuts_dev", "cuts_test"):
        assert (out / f"{name}.jsonl.gz").exists()
    assert (out / "aggregate.log").read_text()
    with gzip.open(out / "cuts_train.jsonl.gz", "rt") as f:
        assert sum(1 for _ in f) == len(cuts) == 8
    with pytest.raises(SystemExit) as e:
        from toolkit.bin.common import run_cli

        run_cli(main, ["--manifest-dir", str(corpus["manifests"]), "--out-dir", str(out),
                       "--weights", "nosuch=2"])  # fmt: skip
    assert e.value.code == 2
    assert "unknown source" in capsys.readouterr().err


def test_shar_export_at_the_training_rate_equals_what_the_loader_makes(tmp_path):
    """sampling_rate=16000: a 44.1 kHz stereo and a 22.05 kHz mono clip are stored mono at
    16 kHz; the loader's view of them (load_mono: resample, average channels) is unchanged up
    to 16-bit FLAC rounding, and the stored copy needs no resampling; ids and captions kept."""
    from toolkit.data.aggregate.mix import export_shar
    from toolkit.data.dataset import load_mono

    rng = np.random.default_rng(0)
    cuts = []
    for name, sr, ch in (("stereo", 44100, 2), ("mono", 22050, 1)):
        t = np.arange(int(1.5 * sr)) / sr
        # loud (0.8): a sum of the channels would clip in Lhotse's 16-bit in-memory downmix
        x = np.stack([0.8 * np.sin(2 * np.pi * (300 + 200 * c) * t) for c in range(ch)], 1)
        x += 0.01 * rng.standard_normal(x.shape)
        x = np.clip(x, -0.99, 0.99)
        sf.write(tmp_path / f"{name}.flac", x.astype(np.float32), sr)
        path = tmp_path / f"{name}.flac"
        cuts.append(make_caption_cut(path, name, [f"a {name} clip"], ["short"], "sound", "t"))
    manifest = tmp_path / "cuts.jsonl.gz"
    CutSet.from_cuts(cuts).to_file(manifest)
    export_shar(manifest, tmp_path / "shar", "flac", shard_size=10, sampling_rate=16000)
    back = {c.id: c for c in CutSet.from_shar(in_dir=tmp_path / "shar")}
    assert set(back) == {"stereo", "mono"}
    for cut in cuts:
        b = back[cut.id]
        assert b.sampling_rate == 16000 and b.num_channels == 1
        assert len(b.supervisions) == 1  # not one copy per channel
        assert b.supervisions[0].custom["caption"] == [f"a {cut.id} clip"]
        ref, got = load_mono(cut, 16000), load_mono(b, 16000)
        assert ref.shape == got.shape
        assert np.abs(ref - got).max() < 2e-4  # 16-bit quantisation (3e-5) plus rounding
        assert np.abs(ref).max() > 0.6  # the averaged tones, neither clipped nor silent


def test_shar_per_source_with_weights_and_subsets(corpus, tmp_path):
    import yaml

    from toolkit.data.sources import open_cuts

    cfg = AggregateConfig(
        sources=["clotho", "wavcaps"],
        shar_dir=tmp_path / "shar",
        shar_shard_size=2,
        shar_per_source=True,
        fractions=[0.5, 1.0],
        weights={"clotho": 2.0},
    )
    res = aggregate(corpus["manifests"], tmp_path / "out", cfg)
    spec = yaml.safe_load(res.files["train_sources"].read_text())["data"]["train"]
    mux = json.loads(res.files["mux_weights"].read_text())
    assert {Path(e["path"]).name: e["weight"] for e in spec} == {
        s: mux[s]["mux_weight"] for s in ("clotho", "wavcaps")
    }
    ids = sorted(c.id for c in open_cuts(spec, "data.train"))
    assert ids == sorted(c.id for c in CutSet.from_file(res.files["train"]))
    half = yaml.safe_load(res.files["train_sources_0.5"].read_text())["data"]["train"]
    want = sorted(c.id for c in CutSet.from_file(res.files["train_0.5"]))
    assert sorted(c.id for c in open_cuts(half, "data.train")) == want
    assert 0 < len(want) < len(ids)
