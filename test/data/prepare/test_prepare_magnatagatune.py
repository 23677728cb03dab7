"""MagnaTagATune prepare module on a fake corpus with real mp3 files
(test/corpus_fixtures/magnatagatune.py)."""

from __future__ import annotations

import numpy as np
import prepare_checks as checks
import pytest
import soundfile as sf
from corpus_fixtures import magnatagatune as fixture

from toolkit.bin.prepare import main as prepare_main
from toolkit.data.cuts import cut_labels
from toolkit.data.dataset import load_mono
from toolkit.data.prepare.magnatagatune import folder_split, prepare_magnatagatune, select_tags

prepared = checks.prepared_fixture(fixture, prepare_magnatagatune, "magnatagatune")


def _tags(cuts):
    return {c.id.removeprefix("magnatagatune_"): cut_labels(c)["music_tags"] for c in cuts}


def test_splits_ids_all_tags(prepared):
    _, _, cuts = prepared
    assert checks.ids_by_split(cuts) == {
        "train": [f"magnatagatune_{i}" for i in (2, 6, 10, 14)],
        "dev": ["magnatagatune_20", "magnatagatune_21"],
        "test": ["magnatagatune_30", "magnatagatune_32"],
    }
    spec = {str(c[0]): c for c in fixture.CLIPS}
    for split, cs in cuts.items():
        for cut in cs:
            clip_id, mp3, tags, _ = spec[cut.id.removeprefix("magnatagatune_")]
            assert split == folder_split(mp3)
            # fewer than 50 tags in the fixture: top-50 keeps all, in column order
            checks.assert_label_only_cut(
                cut, "magnatagatune", "music", split=split, orig_id=str(clip_id),
                music_tags=[t for t in fixture.TAGS if t in tags],
            )  # fmt: skip
            assert cut.duration == pytest.approx(fixture.SECONDS) and cut.sampling_rate == 16000
            assert cut.recording.sources[0].source.endswith(mp3)
    assert _tags(cuts["dev"])["21"] == []  # untagged clips are kept by default
    assert load_mono(cuts["test"][0], 16000).shape == (24000,)  # decoded from mp3


def test_skipped(prepared):
    empty = "b/norine_braun-now_and_zen-08-gently-117-146.mp3"
    assert prepared.skipped("train") == {empty: "unreadable"}
    assert prepared.skipped("test") == {
        "e/electric_frankenstein-conquers_the_world-04-demolition_joyride-0-29.mp3": "missing"
    }
    assert prepared.skipped("dev") == {}


def test_folder_split():
    assert [folder_split(f"{c}/x.mp3") for c in "0123456789abcdef"] == (
        ["train"] * 12 + ["dev"] + ["test"] * 3
    )
    assert folder_split("g/x.mp3") is None and folder_split("") is None


def test_top_k_by_train_counts_and_option_change(prepared, capsys):
    corpus, out, _ = prepared
    ann = corpus / "annotations_final.csv"
    assert select_tags(ann, 3) == ["classical", "fast", "slow"]  # not the test-only female vocal
    assert select_tags(ann, 0) == fixture.TAGS
    before = prepared.manifest("train").stat().st_mtime_ns
    # same output dir, other top_k: the finished parts must not be reused
    cuts = prepare_magnatagatune(corpus, out, top_k_tags=3)
    assert prepared.manifest("train").stat().st_mtime_ns != before
    assert _tags(cuts["train"]) == {
        "2": ["classical", "slow"], "6": ["fast"], "10": ["fast"], "14": ["classical", "slow"]
    }  # fmt: skip
    assert _tags(cuts["test"]) == {"30": [], "32": []}
    dropped = prepare_magnatagatune(corpus, out, top_k_tags=3, drop_untagged=True)
    assert [c.id for c in dropped["dev"]] == ["magnatagatune_20"] and len(
        list(dropped["test"])
    ) == 0
    assert prepared.skipped("dev") == {"c/mediva-viva_mediva-02-ondas_do_mar-88-117.mp3": "no_tags"}
    # back to the defaults through the CLI
    options = ("--annotations", "--audio-dir", "--audio-ext", "--top-k-tags", "--drop-untagged")
    checks.assert_cli_help_lists(capsys, "magnatagatune", *options)
    args = ["magnatagatune", "--corpus-dir", str(corpus), "--output-dir", str(out)]
    assert prepare_main(args) == 0
    # rerun with the same options: reused
    assert checks.assert_rerun_reuses(prepared.manifest("train"), lambda: prepare_main(args)) == 0


def test_audio_ext_maps_converted_files(tmp_path):
    corpus = fixture.write_fixture(tmp_path)
    for clip_id, mp3, _, state in fixture.CLIPS:
        if state == "ok" and clip_id in (20, 21):
            wav = (corpus / "wav" / mp3).with_suffix(".wav")
            wav.parent.mkdir(parents=True, exist_ok=True)
            sf.write(wav, np.zeros(8000, dtype=np.float32), 16000)
    cuts = prepare_magnatagatune(corpus, tmp_path / "m", audio_dir="wav", audio_ext="wav")
    assert [c.duration for c in cuts["dev"]] == [0.5, 0.5]
    assert len(list(cuts["train"])) == 0  # no converted train files: all missing
    assert all(c.recording.sources[0].source.endswith(".wav") for c in cuts["dev"])
