import pytest
import torch

from toolkit.evaluate.zero_shot import (
    DEFAULT_TEMPLATES,
    average_class_embeddings,
    build_prompts,
    zero_shot_accuracy,
)


def test_one_hot_embeddings():
    classes = ["dog", "cat", "rain"]
    class_emb = torch.eye(3)
    labels = ["dog", "cat", "rain", "dog", "cat"]
    audio = torch.tensor(
        [
            [0.9, 0.1, 0.0],  # dog  -> correct
            [0.1, 0.8, 0.1],  # cat  -> correct
            [0.0, 0.1, 0.9],  # rain -> correct
            [0.1, 0.9, 0.0],  # dog  -> predicted cat
            [0.5, 0.5, 0.0],  # cat  -> tie with dog: counted wrong
        ]
    )
    out = zero_shot_accuracy(audio, class_emb, labels, classes)
    assert out == {
        "acc": pytest.approx(60.0),
        "chance_acc": pytest.approx(100 / 3),
        "num_classes": 3,
    }


def test_unknown_label_is_wrong():
    out = zero_shot_accuracy(torch.eye(2), torch.eye(2), ["a", "zzz"], ["a", "b"])
    assert out["acc"] == pytest.approx(50.0)
    assert out["chance_acc"] == pytest.approx(50.0)


def test_build_prompts():
    prompts = build_prompts("speech_language", "french", ["{label}", "{task}: {label} {x}"])
    assert prompts == ["french", "speech_language: french {x}"]
    assert len(build_prompts("t", "dog", DEFAULT_TEMPLATES)) == len(DEFAULT_TEMPLATES)
    assert all("{label}" in t for t in DEFAULT_TEMPLATES)
    assert "the sound of dog" in build_prompts("t", "dog", DEFAULT_TEMPLATES)


def test_average_class_embeddings():
    emb = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 2.0], [0.0, 4.0]])  # C=2, P=2
    out = average_class_embeddings(emb, 2)
    s = 2**-0.5
    torch.testing.assert_close(out, torch.tensor([[s, s], [0.0, 1.0]]))
    with pytest.raises(ValueError):
        average_class_embeddings(emb, 3)


# ----------------------------------------------------------------------------- prompt files
from pathlib import Path  # noqa: E402

from toolkit.config import ConfigError  # noqa: E402
from toolkit.evaluate.embeddings import EmbeddingSet  # noqa: E402
from toolkit.evaluate.metrics import mean_average_precision  # noqa: E402
from toolkit.evaluate.zero_shot import (  # noqa: E402
    load_class_names,
    load_prompt_file,
    task_prompts,
    zero_shot_map,
)
from toolkit.registry import EVALUATORS  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def write(folder: Path, name: str, text: str) -> Path:
    (folder / name).write_text(text, encoding="utf-8")
    return folder / name


def test_prompt_file_comments_blank_lines_and_errors(tmp_path):
    path = write(
        tmp_path,
        "t.prompts.txt",
        "# header comment\n\n  the sound of {label}  \n   # indented comment\n{label}\n"
        "the sound of {label}\n{task}: {label} {x}\n",
    )
    assert load_prompt_file(path) == ["the sound of {label}", "{label}", "{task}: {label} {x}"]
    write(tmp_path, "bad.prompts.txt", "# c\n{label}\nno placeholder here\n")
    with pytest.raises(ValueError, match=r"bad\.prompts\.txt:3: .*\{label\}"):
        load_prompt_file(tmp_path / "bad.prompts.txt")
    write(tmp_path, "empty.prompts.txt", "# only a comment\n\n")
    with pytest.raises(ValueError, match="no prompt template"):
        load_prompt_file(tmp_path / "empty.prompts.txt")


def test_class_names_file(tmp_path):
    path = write(
        tmp_path, "t.classes.tsv", "# label<TAB>name\ndog_bark\ta dog barking\n\nrain\train \n"
    )
    assert load_class_names(path) == {"dog_bark": "a dog barking", "rain": "rain"}
    for text, line in (("a\tb\tc\n", 1), ("# c\nno tab\n", 2), ("a\t \n", 1), ("a\tx\na\ty\n", 2)):
        write(tmp_path, "bad.classes.tsv", text)
        with pytest.raises(ValueError, match=rf"bad\.classes\.tsv:{line}:"):
            load_class_names(tmp_path / "bad.classes.tsv")


def test_task_prompts_fallbacks(tmp_path):
    # no folder: the templates option, raw labels
    tp = task_prompts("sound_event", None, ["{label} x"])
    assert tp.templates == ["{label} x"] and tp.name_of("dog") == "dog" and tp.digest == ""
    # folder without files: same fallback
    assert task_prompts("sound_event", tmp_path, ["{label} x"]).templates == ["{label} x"]
    write(tmp_path, "default.prompts.txt", "# d\nthe sound of {label}\n")
    write(tmp_path, "sound_event.prompts.txt", "{label} heard\na clip of {label}\n")
    write(tmp_path, "sound_event.classes.tsv", "dog_bark\ta dog barking\n")
    write(tmp_path, "music_genre.classes.tsv", "hiphop\thip hop\n")
    tp = task_prompts("sound_event", tmp_path)
    assert tp.templates == ["{label} heard", "a clip of {label}"]
    assert tp.prompts("sound_event", ["dog_bark", "rain"]) == [
        "a dog barking heard",
        "a clip of a dog barking",
        "rain heard",  # a label missing from the classes file is used as it is
        "a clip of rain",
    ]
    assert "sound_event.prompts.txt" in tp.source and len(tp.digest) == 12
    # a task without its own prompt file: default.prompts.txt, its own class names
    tp = task_prompts("music_genre", tmp_path)
    assert tp.templates == ["the sound of {label}"]
    assert tp.prompts("music_genre", ["hiphop", "jazz"]) == [
        "the sound of hip hop",
        "the sound of jazz",
    ]
    # no default file either: the fallback templates with the task's class names
    (tmp_path / "default.prompts.txt").unlink()
    tp = task_prompts("music_genre", tmp_path, ["{label}!"])
    assert tp.prompts("music_genre", ["hiphop"]) == ["hip hop!"]
    assert tp.source.startswith("templates option")
    with pytest.raises(FileNotFoundError):
        task_prompts("x", tmp_path / "missing")


def keyword_text_fn(vocab: list[str], calls: list[list[str]]):
    """Fake text tower: a prompt embeds as the one-hot of the vocab word it contains."""

    def fn(texts: list[str]) -> torch.Tensor:
        calls.append(list(texts))
        out = torch.zeros(len(texts), len(vocab))
        for i, t in enumerate(texts):
            for j, w in enumerate(vocab):
                if w in t:
                    out[i, j] = 1.0
        return torch.nn.functional.normalize(out + 1e-3, dim=-1)

    return fn


def es_with(audio: torch.Tensor, labels: dict) -> EmbeddingSet:
    n = audio.shape[0]
    return EmbeddingSet([str(i) for i in range(n)], torch.zeros(n, 1), audio, labels, [[]] * n)


def test_zero_shot_evaluator_uses_prompt_files_and_class_names(tmp_path):
    # labels are codes; only the class-name mapping makes them match the "text tower" vocab
    write(tmp_path, "speech_emotion.prompts.txt", "# v1\na {label} voice\n{label} speech\n")
    write(tmp_path, "speech_emotion.classes.tsv", "ANG\tangry\nHAP\thappy\nSAD\tsad\n")
    vocab = ["angry", "happy", "sad"]
    audio = torch.eye(3)[[0, 1, 2, 0]]
    labels = {"speech_emotion": ["ANG", "HAP", "SAD", "ANG"]}
    splits = {"train": es_with(audio, labels), "test": es_with(audio, labels)}
    calls: list[list[str]] = []
    ev = EVALUATORS.build({"name": "zero_shot", "prompts_dir": str(tmp_path)}, "e")
    (row,) = ev("m", splits, keyword_text_fn(vocab, calls))
    assert (row["group"], row["task"], row["metric"]) == ("zero-shot", "speech_emotion", "acc")
    assert row["value"] == pytest.approx(100.0) and row["chance"] == pytest.approx(100 / 3)
    assert calls == [
        [
            "a angry voice",
            "angry speech",
            "a happy voice",
            "happy speech",
            "a sad voice",
            "sad speech",
        ]
    ]
    # without the folder the raw codes match nothing: every class ties -> 0 % (pessimistic)
    (row,) = EVALUATORS.build({"name": "zero_shot"}, "e")("m", splits, keyword_text_fn(vocab, []))
    assert row["value"] == 0.0
    # tasks option: only the listed tasks
    assert (
        EVALUATORS.build({"name": "zero_shot", "tasks": ["x"]}, "e")(
            "m", splits, keyword_text_fn(vocab, [])
        )
        == []
    )


def test_zero_shot_evaluator_rejects_bad_prompt_folder(tmp_path):
    with pytest.raises(ConfigError, match="not a folder"):
        EVALUATORS.build({"name": "zero_shot", "prompts_dir": str(tmp_path / "nope")}, "e")
    write(tmp_path, "a.prompts.txt", "no placeholder\n")
    with pytest.raises(ConfigError, match=r"a\.prompts\.txt:1"):
        EVALUATORS.build({"name": "zero_shot", "prompts_dir": str(tmp_path)}, "e")
    with pytest.raises(ConfigError, match="label"):
        EVALUATORS.build({"name": "zero_shot", "templates": ["no placeholder"]}, "e")


def test_zero_shot_map_by_hand():
    classes = ["a", "b", "c"]
    class_emb = torch.eye(3)
    audio = torch.tensor([[0.9, 0.1, 0.0], [0.2, 0.8, 0.3], [0.5, 0.4, 0.1], [0.1, 0.0, 0.7]])
    labels = [["a"], ["b", "c"], ["b"], ["zzz"]]
    out = zero_shot_map(audio, class_emb, labels, classes)
    # class a: scores .9 .2 .5 .1, positive row 0 ranked 1 -> AP 1
    # class b: scores .1 .8 .4 0, positives rows 1, 2 ranked 1, 2 -> AP 1
    # class c: scores 0 .3 .1 .7, positive row 1 ranked 2 -> AP 1/2
    assert out["mAP"] == pytest.approx(100 * (1 + 1 + 0.5) / 3)
    assert out["chance_map"] == pytest.approx(100 * (1 / 4 + 2 / 4 + 1 / 4) / 3)
    assert out["num_unknown"] == 1 and out["num_scored"] == 3
    target = torch.tensor([[1, 0, 0], [0, 1, 1], [0, 1, 0], [0, 0, 0]], dtype=torch.float)
    assert out["mAP"] == pytest.approx(mean_average_precision(audio, target).map)


def test_zero_shot_evaluator_multi_label_task():
    vocab = ["dog", "rain", "bell"]
    audio = torch.nn.functional.normalize(
        torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0]]), dim=-1
    )
    labels = {"sound_events": [["dog"], ["rain", "bell"], ["bell"], ["dog", "rain"]]}
    splits = {"train": es_with(audio, labels), "test": es_with(audio, labels)}
    (row,) = EVALUATORS.build({"name": "zero_shot"}, "e")("m", splits, keyword_text_fn(vocab, []))
    assert (row["task"], row["metric"]) == ("sound_events", "mAP")
    assert row["value"] == pytest.approx(100.0)
    assert row["chance"] == pytest.approx(100 * (2 / 4 + 2 / 4 + 2 / 4) / 3)


def _demo_label_values() -> dict[str, tuple[str, ...]]:
    from toolkit.data.prepare.demo import music as demo_music
    from toolkit.data.prepare.demo import sound as demo_sound
    from toolkit.data.prepare.demo import speech as demo_speech

    return {
        "speech_language": demo_speech.LANGUAGES,
        "speech_gender": demo_speech.GENDERS,
        "speech_rate": demo_speech.RATES,
        "music_instrument": demo_music.INSTRUMENTS,
        "music_mode": demo_music.MODES,
        "music_tempo": demo_music.TEMPOS,
        "sound_event": demo_sound.EVENTS,
        "sound_count": demo_sound.COUNTS,
    }


def test_demo_prompt_files_cover_every_demo_task():
    folder = REPO / "egs/demo/conf/prompts"
    EVALUATORS.build({"name": "zero_shot", "prompts_dir": str(folder)}, "e")  # every file parses
    for task, values in _demo_label_values().items():
        assert (folder / f"{task}.prompts.txt").is_file(), task
        tp = task_prompts(task, folder)
        assert set(tp.class_names) <= set(values), task  # no misspelt label in a classes file
        if tp.class_names:
            assert set(values) <= set(tp.class_names), task
        names = [tp.name_of(v) for v in values]
        assert len(set(names)) == len(names), task  # classes stay distinguishable


def test_captionstew_prompt_files_parse():
    folder = REPO / "egs/captionstew/conf/prompts"
    EVALUATORS.build({"name": "zero_shot", "prompts_dir": str(folder)}, "e")
    for task in (
        "sound_event",
        "sound_events",
        "speech_emotion",
        "speech_keyword",
        "music_genre",
        "music_instrument",
        "music_tags",
    ):
        assert (folder / f"{task}.prompts.txt").is_file(), task
    assert not (folder / "speech_speaker.prompts.txt").exists()
    emotions = ("anger", "disgust", "fear", "happy", "neutral", "sad")
    assert set(task_prompts("speech_emotion", folder).class_names) == set(emotions)
