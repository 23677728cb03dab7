"""Tests for the built-in demo corpus generator (toolkit.data.prepare.demo)."""

from __future__ import annotations

import gzip
import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from lhotse import CutSet

from toolkit.data.cuts import CAPTION_STYLES, cut_captions, cut_labels, label_tasks
from toolkit.data.prepare import demo
from toolkit.data.prepare.demo import music as demo_music
from toolkit.data.prepare.demo import sound as demo_sound
from toolkit.data.prepare.demo import speech as demo_speech

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")

SIZES = {"num_train": 24, "num_dev": 8, "num_test": 8}
LABEL_VALUES = {
    "speech_language": demo_speech.LANGUAGES,
    "speech_rate": demo_speech.RATES,
    "speech_gender": demo_speech.GENDERS,
    "music_instrument": demo_music.INSTRUMENTS,
    "music_mode": demo_music.MODES,
    "music_tempo": demo_music.TEMPOS,
    "sound_event": demo_sound.EVENTS,
    "sound_count": demo_sound.COUNTS,
}


def _generate(root, seed=0, num_jobs=2, force=False, **sizes):
    sizes = {**SIZES, **sizes}
    corpus, manifests = root / "corpus", root / "manifests"
    cuts = demo.prepare_demo(corpus, manifests, seed=seed, num_jobs=num_jobs, force=force, **sizes)
    return cuts, manifests


def _manifest_bytes(manifests):
    return {s: gzip.decompress(demo.manifest_path(manifests, s).read_bytes()) for s in demo.SPLITS}


def _audio(cutsets):
    return {c.id: c.load_audio() for cs in cutsets.values() for c in cs}


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    cuts, manifests = _generate(root)
    return root, cuts, manifests


def test_layout_and_sizes(generated):
    root, cuts, manifests = generated
    for split, n in zip(demo.SPLITS, SIZES.values(), strict=True):
        assert demo.manifest_path(manifests, split).is_file()
        assert len(cuts[split]) == n
        for cut in cuts[split]:
            path = root / "corpus" / split / f"{cut.id}.flac"
            info = sf.info(path)
            assert info.samplerate == 16000 and info.channels == 1 and info.format == "FLAC"
            assert cut.id.startswith(f"demo-{split}-")


def test_cut_contract(generated):
    _, cuts, _ = generated
    for cut in (c for cs in cuts.values() for c in cs):
        assert 1.0 <= cut.duration <= 8.0
        assert cut.sampling_rate == 16000 and cut.num_channels == 1
        assert cut.recording.id == cut.id and len(cut.supervisions) == 1
        sup = cut.supervisions[0]
        assert sup.start == 0 and sup.duration == pytest.approx(cut.duration)
        custom = sup.custom
        caps, styles = custom["caption"], custom["caption_style"]
        assert 2 <= len(caps) <= 4 and len(styles) == len(caps) == len(set(styles))
        assert set(styles) <= set(CAPTION_STYLES)
        assert all(c == c.strip() and c for c in caps) and sup.text == caps[0]
        assert custom["source"] == "demo"
        domain = custom["domain"]
        labels = cut_labels(cut)
        expected = {
            "speech": {"speech_language", "speech_rate", "speech_gender"},
            "music": {"music_instrument", "music_mode", "music_tempo"},
            "sound": {"sound_event"}
            | ({"sound_count"} if labels.get("sound_event") in demo_sound.COUNTABLE else set()),
            "mix": set(),
        }[domain]
        assert set(labels) == expected, (cut.id, labels)
        for key, value in labels.items():
            assert value in LABEL_VALUES[key]
        if domain != "speech":
            assert "speaking_style" not in styles
        # probe attributes are stated in every caption
        for caption in caps:
            low = caption.lower()
            if domain == "speech":
                assert labels["speech_language"] in low
            if domain == "music":
                assert labels["music_mode"] in low


def test_all_domains_and_tasks_present(generated):
    _, cuts, _ = generated
    every = [c for cs in cuts.values() for c in cs]
    assert {c.supervisions[0].custom["domain"] for c in every} == {
        "speech",
        "music",
        "sound",
        "mix",
    }
    assert label_tasks(every) == sorted(LABEL_VALUES)


def test_audio_loads_and_does_not_clip(generated):
    _, _, manifests = generated
    for split in demo.SPLITS:
        for cut in CutSet.from_file(demo.manifest_path(manifests, split)):
            audio = cut.load_audio()
            assert audio.shape == (1, cut.num_samples) and audio.dtype == np.float32
            peak = np.abs(audio).max()
            assert np.isfinite(audio).all() and 0.1 < peak < 1.0


def test_splits_are_disjoint(generated):
    _, cuts, _ = generated
    ids = {s: {c.id for c in cs} for s, cs in cuts.items()}
    assert not (ids["train"] & ids["dev"] or ids["train"] & ids["test"] or ids["dev"] & ids["test"])
    hashes = {
        s: {hashlib.sha1(c.load_audio().tobytes()).hexdigest() for c in cs}
        for s, cs in cuts.items()
    }
    assert sum(len(h) for h in hashes.values()) == len(set().union(*hashes.values()))


def test_sentences_are_disjoint_across_splits():
    rng = np.random.default_rng(0)
    sents = {
        s: {demo_speech.make_sentence("english", rng, s) for _ in range(300)} for s in demo.SPLITS
    }
    assert not (sents["train"] & sents["dev"] or sents["train"] & sents["test"])
    assert not sents["dev"] & sents["test"]


@pytest.mark.slow
def test_deterministic(generated, tmp_path):
    root, cuts, manifests = generated
    ref_bytes = {s: demo.manifest_path(manifests, s).read_bytes() for s in demo.SPLITS}
    ref_audio = _audio(cuts)
    # same seed, same paths, other num_jobs: byte-identical manifests and identical samples
    again, _ = _generate(root, num_jobs=1, force=True)
    assert {s: demo.manifest_path(manifests, s).read_bytes() for s in demo.SPLITS} == ref_bytes
    audio = _audio(again)
    assert audio.keys() == ref_audio.keys()
    assert all(np.array_equal(audio[k], ref_audio[k]) for k in audio)
    # same seed in another directory: identical up to the audio paths
    other, other_manifests = _generate(tmp_path, num_jobs=2)
    old, new = str(root / "corpus"), str(tmp_path / "corpus")
    for split, text in _manifest_bytes(other_manifests).items():
        assert text.decode().replace(new, old).encode() == _manifest_bytes(manifests)[split]
    # a different seed gives different audio and captions
    diff, _ = _generate(tmp_path / "seed1", seed=1)
    diff_audio = _audio(diff)
    assert sum(not np.array_equal(diff_audio[k], ref_audio[k]) for k in ref_audio) > 0.9 * len(
        ref_audio
    )
    caps = lambda cs: [cut_captions(c) for c in cs["train"]]  # noqa: E731
    assert caps(diff) != caps(cuts)


def test_existing_manifests_are_reused(generated, monkeypatch):
    root, cuts, _ = generated

    def boom(*args, **kwargs):
        raise AssertionError("should not regenerate")

    monkeypatch.setattr(demo, "generate_clip", boom)
    loaded, _ = _generate(root)
    assert {s: [c.id for c in cs] for s, cs in loaded.items()} == {
        s: [c.id for c in cs] for s, cs in cuts.items()
    }


def test_empty_captions_are_rejected(tmp_path, monkeypatch):
    real = demo.select_captions

    def blank_some(options, rng, max_n=4):
        caps, styles = real(options, rng, max_n)
        return (["  "] * len(caps), styles) if rng.random() < 0.5 else (caps, styles)

    monkeypatch.setattr(demo, "select_captions", blank_some)
    cuts, _ = _generate(tmp_path, num_jobs=1, num_train=8, num_dev=2, num_test=2)
    assert 0 < sum(len(cs) for cs in cuts.values()) < 12
    assert all(cut_captions(c) for cs in cuts.values() for c in cs)


def test_cli(tmp_path):
    demo.main(
        ["--corpus-dir", str(tmp_path / "c"), "--output-dir", str(tmp_path / "m"),
         "--num-train", "3", "--num-dev", "2", "--num-test", "2", "--seed", "5", "--num-jobs", "1"]
    )  # fmt: skip
    loaded = {s: CutSet.from_file(demo.manifest_path(tmp_path / "m", s)) for s in demo.SPLITS}
    assert [len(cs) for cs in loaded.values()] == [3, 2, 2]


def test_the_recipe_runs_the_package_as_a_module():
    """egs/demo/run.sh calls ``python -m toolkit.data.prepare.demo`` (a package: needs __main__)."""
    import subprocess
    import sys

    r = subprocess.run(
        [sys.executable, "-m", "toolkit.data.prepare.demo", "--help"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[3],
    )
    assert r.returncode == 0 and "--corpus-dir" in r.stdout, r.stderr


def test_fft_length_is_the_smallest_5_smooth_length():
    from toolkit.data.prepare.demo.synth import fft_length

    def smooth(m: int) -> bool:
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        return m == 1

    for n in [1, 2, 7, 97, 1000, 4097, 127331, 100003]:
        m = fft_length(n)
        assert m >= n and smooth(m)
        assert not any(smooth(k) for k in range(n, m))


def test_resample_equals_the_direct_polyphase_sum():
    from toolkit.data.prepare.demo.synth import _resample_kernel, resample

    rng = np.random.default_rng(0)
    for sr_in, n in [(22050, 22050 * 2 + 17), (44100, 999), (8000, 4000)]:
        x = rng.standard_normal(n)
        up, down = 16000 // np.gcd(16000, sr_in), sr_in // np.gcd(16000, sr_in)
        kernel, hw = _resample_kernel(up, down, 24), 24
        xp = np.concatenate([np.zeros(hw), x, np.zeros(hw)])
        idx = np.arange(n * up // down)
        want = [
            xp[i * down // up + 1 : i * down // up + 1 + 2 * hw] @ kernel[i * down % up]
            for i in idx
        ]
        np.testing.assert_allclose(resample(x, sr_in), want, rtol=0, atol=1e-12)


def test_partials_equal_the_sum_of_sines():
    n, freq = 8000, 220.0
    amps, taus = np.linspace(1.0, 0.1, 20), 0.4 / np.arange(1, 21)
    t = np.arange(n) / demo_music.SR
    phase = 2 * np.pi * freq * np.arange(1, n + 1) / demo_music.SR
    k = np.arange(1, 21)[k_keep := np.arange(1, 21) * freq < 0.45 * demo_music.SR]
    want = np.sum(
        amps[k_keep, None] * np.sin(k[:, None] * phase) * np.exp(-t / taus[k_keep, None]), 0
    )
    np.testing.assert_allclose(demo_music._partials(freq, n, amps, taus, None), want, atol=1e-9)
    sustained = np.sum(amps[k_keep, None] * np.sin(k[:, None] * phase), 0)
    got = demo_music._partials(freq, n, amps, np.full(20, np.inf), None)
    np.testing.assert_allclose(got, sustained, atol=1e-9)


def test_existing_manifests_of_other_sizes_are_refused(generated, tmp_path):
    root, _, manifests = generated
    assert (manifests / demo.PARAMS_FILE).is_file()
    with pytest.raises(ValueError, match=r"num_train=24.*asked for num_train=30.*--force"):
        _generate(root, num_train=30)
    with pytest.raises(ValueError, match="seed=0.*seed=1"):
        _generate(root, seed=1)
    # the CLI says it in one line (exit 2), naming what is there
    corpus, out = str(root / "corpus"), str(manifests)
    argv = ["--corpus-dir", corpus, "--output-dir", out, "--num-train", "30"]
    with pytest.raises(SystemExit) as e:
        demo.main(argv + ["--num-dev", "8", "--num-test", "8"])
    assert e.value.code == 2
