"""toolkit.bin.config_get: one key of a resolved config, for shell recipes."""

from __future__ import annotations

from toolkit.bin.config_get import get_key, main


def test_get_key_through_includes_and_overrides(tmp_path, capsys):
    (tmp_path / "base.yaml").write_text("tokenizer: {name: sentencepiece, model: a.model}\n")
    (tmp_path / "top.yaml").write_text("include: [base.yaml]\nencoder: {name: cnn}\n")
    assert main(["tokenizer.name", "-c", str(tmp_path / "top.yaml")]) == 0
    assert capsys.readouterr().out.strip() == "sentencepiece"
    main(["tokenizer.name", "-c", str(tmp_path / "top.yaml"), "tokenizer.name=hf"])
    assert capsys.readouterr().out.strip() == "hf"
    main(["no.such.key", "-c", str(tmp_path / "top.yaml")])
    assert capsys.readouterr().out == ""
    assert get_key({"a": {"b": 1}}, "a.b") == 1 and get_key({"a": 1}, "a.b") is None
