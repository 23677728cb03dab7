"""NaN/Inf and undecodable audio is caught where audio is first read: validation with
``decode_audio``, the training data loader, and the audio reader of inference / the model API."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from lhotse import CutSet, MonoCut, Recording, SupervisionSegment

from toolkit.audio import AudioLoadError, read_audio
from toolkit.data.dataset import CaptionDataset
from toolkit.data.validate import validate_cuts


def cut_of(path: Path, caption: str = "a tone") -> MonoCut:
    rec = Recording.from_file(path)
    sup = SupervisionSegment(
        id=rec.id, recording_id=rec.id, start=0.0, duration=rec.duration,
        custom={"caption": [caption]},
    )  # fmt: skip
    return MonoCut(rec.id, 0.0, rec.duration, 0, recording=rec, supervisions=[sup])


@pytest.fixture
def clips(tmp_path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    good = (0.1 * rng.standard_normal(8000)).astype(np.float32)
    out = {}
    for name, value in (("good", None), ("nan", np.nan), ("inf", np.inf)):
        x = good.copy()
        if value is not None:
            x[4000:4010] = value
        out[name] = tmp_path / f"{name}.wav"
        sf.write(out[name], x, 16000, subtype="FLOAT")
    out["truncated"] = tmp_path / "truncated.wav"
    out["truncated"].write_bytes(out["good"].read_bytes()[:60])  # header claims more samples
    return out


def test_validation_with_decoding_drops_nan_inf_and_undecodable(clips, caplog):
    cuts = [cut_of(clips[k]) for k in ("good", "nan", "inf")]
    trunc = cut_of(clips["good"])
    trunc.recording.sources[0].source = str(clips["truncated"])
    cuts.append(trunc)
    kept, reasons = validate_cuts(cuts, decode_audio=False)
    assert len(kept) == 4  # header checks alone cannot see the samples
    with caplog.at_level(logging.WARNING):
        kept, reasons = validate_cuts(cuts, decode_audio=True)
    assert [c.id for c in kept] == ["good"] and reasons == {"bad_audio": 3}
    assert "non-finite (NaN/Inf) samples" in caplog.text and "nan" in caplog.text


def test_the_data_loader_skips_and_counts_nan_audio(clips):
    cuts = CutSet.from_cuts([cut_of(clips[k]) for k in ("good", "nan", "inf")])
    batch = CaptionDataset(None, sampling_rate=16000)[cuts]
    assert batch["cut_ids"] == ["good"] and batch["num_skipped"] == 2
    assert set(batch["skipped_ids"]) == {"nan", "inf"}


def test_the_reader_refuses_nan_audio_with_the_file_named(clips):
    assert read_audio(clips["good"])[0].shape == (1, 8000)
    with pytest.raises(AudioLoadError, match=r"nan\.wav': non-finite"):
        read_audio(clips["nan"])
    with pytest.raises(AudioLoadError, match=r"inf\.wav': non-finite"):
        read_audio(clips["inf"])
