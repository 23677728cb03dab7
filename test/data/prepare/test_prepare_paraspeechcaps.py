"""Tests for the ParaSpeechCaps prepare module on a tiny fake corpus (JSONL/CSV exports)."""

from __future__ import annotations

import prepare_checks as checks
import pytest
from corpus_fixtures import paraspeechcaps as fixture

from toolkit.data.cuts import cut_captions, cut_custom, cut_labels
from toolkit.data.dataset import load_mono
from toolkit.data.prepare import paraspeechcaps as psc

VOX_ID = "paraspeechcaps_voxceleb_voxceleb1_dev_wav_id10059_2gOUjSqfO9c_00003_voicefixer"


prepared = checks.prepared_fixture(
    fixture, psc.prepare_paraspeechcaps, "paraspeechcaps", by_id=True
)


def test_as_list():
    assert psc.as_list(["a", " b "]) == ["a", "b"]
    assert psc.as_list("['husky', 'deep']") == ["husky", "deep"]
    assert psc.as_list('["x"]') == ["x"]
    assert psc.as_list("") == psc.as_list(None) == psc.as_list("None") == []
    assert psc.as_list(float("nan")) == []


def test_splits_and_ids(prepared):
    _, _, cuts = prepared
    assert set(cuts) == {"train", "dev", "test"}
    assert set(cuts["train"]) == {
        VOX_ID,
        "paraspeechcaps_ears_p004_emo_amusement_freeform",
        "paraspeechcaps_voxceleb_voxceleb2_dev_aac_id00012_21Uxsk56VDQ_00001_voicefixer",
        "paraspeechcaps_emilia_EN_EN_B00030_EN_B00030_S01984_mp3_EN_B00030_S01984_W000037",
    }
    assert list(cuts["dev"]) == [
        "paraspeechcaps_expresso_audio_48khz_read_ex02_whisper_base_ex02_whisper_00123"
    ]
    assert list(cuts["test"]) == ["paraspeechcaps_ears_p101_emo_sadness_freeform"]
    official = {cut_custom(c)["split"] for c in cuts["train"].values()}
    assert official == {"train_base", "train_scaled"}
    assert cut_custom(next(iter(cuts["test"].values())))["split"] == "holdout"


def test_captions_labels_audio(prepared):
    _, _, cuts = prepared
    vox = cuts["train"][VOX_ID]
    assert cut_captions(vox) == [
        "A man with a deep, husky voice speaks calmly in a quiet room.",
        "In a clean recording, a husky-voiced man talks at a measured pace.",
    ]
    checks.assert_custom(
        vox, caption_style=["speaking_style", "speaking_style"], domain="speech",
        source="paraspeechcaps", orig_id=fixture.VOX,
    )  # fmt: skip
    assert "audio_key" not in cut_custom(vox)
    assert cut_labels(vox) == {
        "speech_gender": "male",
        "speech_accent": "American",
        "speech_pitch": "moderate pitch",
        "speech_rate": "measured speed",
        "speech_noise": "very clear",
        "speech_corpus": "voxceleb",
        "speech_style_tags": ["husky", "deep"],
    }
    assert vox.sampling_rate == 16000 and vox.duration == pytest.approx(1.0)
    emilia = next(c for c in cuts["train"].values() if "emilia" in c.id)
    assert cut_labels(emilia)["speech_style_tags"] == ["bright", "enthusiastic"]
    assert emilia.sampling_rate == 24000 and emilia.duration == pytest.approx(1.2, abs=0.06)
    held = next(iter(cuts["test"].values()))  # from the CSV export: list cells parsed
    assert cut_labels(held)["speech_style_tags"] == ["breathy", "sad"]
    assert cut_labels(held)["speech_accent"] == "British"
    assert "speech_accent" not in cut_labels(
        cuts["train"]["paraspeechcaps_ears_p004_emo_amusement_freeform"]
    )
    flac = next(c for c in cuts["train"].values() if "voxceleb2" in c.id)
    assert flac.recording.sources[0].source.endswith("00001_voicefixer.flac")
    assert load_mono(held, 16000).shape == (11200,)  # 0.7 s of 48 kHz audio at 16 kHz


def test_skipped(prepared):
    assert prepared.skipped("train") == {
        "p005/emo_anger_sentences.wav": "missing",
        fixture.VOX: "duplicate",
    }
    assert set(prepared.skipped("dev").values()) == {"no_caption"}
    assert set(prepared.skipped("test").values()) == {"unreadable"}


def test_options_and_reuse(prepared, tmp_path, capsys):
    corpus, out, _ = prepared
    checks.assert_rerun_reuses(
        prepared.manifest("train"), lambda: psc.prepare_paraspeechcaps(corpus, out)
    )
    base_only = psc.prepare_paraspeechcaps(
        corpus, tmp_path / "b", include_scaled=False, fallback_extensions=False
    )
    assert len(list(base_only["train"])) == 1 + 1  # VoxCeleb1 + EARS; FLAC-only one missing
    checks.assert_cli_help_lists(capsys, "paraspeechcaps", "--voxceleb-dir", "--ears-dir",
                          "--expresso-dir", "--emilia-dir", "--include-scaled",
                          "--fallback-extensions")  # fmt: skip


def test_parquet_only_without_pyarrow(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "dev-00000-of-00001.parquet").write_bytes(b"PAR1")
    monkeypatch.setattr(psc, "have_pyarrow", lambda: False)
    with pytest.raises(RuntimeError, match="pyarrow is not installed"):
        psc.prepare_paraspeechcaps(tmp_path, tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="no ParaSpeechCaps tables"):
        psc.prepare_paraspeechcaps(tmp_path / "data" / "x", tmp_path / "out")


@pytest.mark.skipif(not psc.have_pyarrow(), reason="needs pyarrow")
def test_parquet_roundtrip(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    records = [fixture._record(fixture.ROWS[0])]
    pq.write_table(pa.Table.from_pylist(records), tmp_path / "t.parquet")
    assert list(psc.iter_records(tmp_path / "t.parquet")) == records
