"""A tiny fake GTZAN in the Kaggle layout (``Data/genres_original/<genre>/<genre>.000NN.wav``)
plus fault-filtered-style split lists (``train_filtered.txt`` ...: ``<genre>/<file>`` lines).

Real: 10 genres × 100 excerpts of 30 s, 22,050 Hz mono 16-bit. Here: 4 genres × 5 excerpts of
0.5 s. ``jazz.00054.wav`` is corrupt (as in the Kaggle copy); ``hiphop.00062.wav`` is listed in
the test list but absent (missing). Six files are in no list (left out in list mode).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

SR = 22050
SECONDS = 0.5
FILES = {
    "blues": ["00005", "00010", "00012", "00029", "00031"],
    "classical": ["00009", "00016", "00019", "00021", "00024"],
    "hiphop": ["00001", "00004", "00008", "00014", "00015"],
    "jazz": ["00003", "00009", "00016", "00054", "00078"],
}
CORRUPT = "jazz.00054"
LISTS = {
    "train_filtered.txt": ["blues.00029", "blues.00031", "classical.00021", "hiphop.00014",
                           "jazz.00054", "jazz.00078"],
    "valid_filtered.txt": ["blues.00012", "classical.00024", "hiphop.00015"],
    "test_filtered.txt": ["blues.00005", "blues.00010", "classical.00009", "hiphop.00001",
                          "hiphop.00062", "jazz.00003"],
}  # fmt: skip
PREPARE_OPTIONS: dict = {
    "train_list": "train_filtered.txt",
    "dev_list": "valid_filtered.txt",
    "test_list": "test_filtered.txt",
}


def write_fixture(root: Path) -> Path:
    """Write the fake GTZAN under ``root/gtzan`` and return that corpus_dir."""
    corpus = Path(root) / "gtzan"
    genres = corpus / "Data" / "genres_original"
    for g, (genre, numbers) in enumerate(FILES.items()):
        (genres / genre).mkdir(parents=True, exist_ok=True)
        for k, num in enumerate(numbers):
            path = genres / genre / f"{genre}.{num}.wav"
            if path.stem == CORRUPT:
                path.write_bytes(b"RIFF\xff\xff\xff\xffWAVEfmt " + bytes(16))
                continue
            t = np.arange(int(SR * SECONDS)) / SR
            x = 0.3 * np.sin(2 * np.pi * (110 * (g + 1) + 10 * k) * t)
            sf.write(path, x.astype(np.float32), SR, subtype="PCM_16")
    for name, stems in LISTS.items():
        lines = [f"{s.split('.')[0]}/{s}.wav" for s in stems]
        (corpus / name).write_text("\n".join(lines) + "\n")
    return corpus
