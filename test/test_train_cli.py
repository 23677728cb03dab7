"""toolkit.bin.train helpers: the run dir keeps its own copy of the feature statistics."""

from __future__ import annotations

import torch

from toolkit.bin.train import keep_stats_with_run


def test_stats_file_is_copied_into_the_run_dir(tmp_path):
    src = tmp_path / "data" / "fbank_stats.pt"
    src.parent.mkdir()
    torch.save({"mean": torch.ones(3), "std": torch.ones(3)}, src)
    exp = tmp_path / "exp" / "run"
    cfg = {"frontend": {"name": "fbank", "stats_file": str(src)}}
    keep_stats_with_run(cfg, exp)
    assert cfg["frontend"]["stats_file"] == str(exp / "fbank_stats.pt")
    assert torch.equal(torch.load(exp / "fbank_stats.pt")["mean"], torch.ones(3))
    keep_stats_with_run(cfg, exp)  # resuming with the copy itself: no error, same path
    assert cfg["frontend"]["stats_file"] == str(exp / "fbank_stats.pt")
    none = {"frontend": {"name": "fbank", "stats_file": None}}
    keep_stats_with_run(none, exp)
    assert none["frontend"]["stats_file"] is None
