"""QA sets from labels and captions: template answers, fallback, skips, describe items with and
without caption styles, determinism, custom template files and their errors."""

from __future__ import annotations

import json

import pytest
import torch
from lhotse import CutSet, MonoCut, SupervisionSegment

from toolkit.config import ConfigError
from toolkit.evaluate.embeddings import EmbeddingSet
from toolkit.evaluate.qa_data import (
    ClipRecord,
    build_qa_items,
    label_answer,
    load_templates,
    records_from_cuts,
    records_from_embeddings,
    write_qa_jsonl,
)

SPEECH = ClipRecord(
    "s1",
    {"speech_gender": "female", "speech_language": "german", "speech_speaker": "id123"},
    ["A woman speaks German.", "Speaking style: fast, animated."],
    ["short", "speaking_style"],
)
MUSIC = ClipRecord("m1", {"music_instrument": "piano", "music_loudness": "loud_ish"}, ["Piano."])
SOUND = ClipRecord("x1", {"sound_events": ["dog_bark", "rain"]}, [])


def by_task(items):
    return {it.task: it for it in items}


def test_default_templates_answer_with_the_label():
    items = by_task(build_qa_items([SPEECH, MUSIC, SOUND], seed=0))
    assert items["speech_gender"].question in (
        "Is the speaker male or female?",
        "What is the gender of the speaker?",
    )
    assert items["speech_gender"].answers == ("female",)
    assert items["speech_language"].answers == ("german",)
    assert items["music_instrument"].question in (
        "What instrument is playing?",
        "Which instrument can be heard?",
    )
    assert items["music_instrument"].answers == ("piano",)
    # an unknown attribute: the generic fallback, "_" read as a space
    assert items["music_loudness"].question == "What is the loudness of this music clip?"
    assert items["music_loudness"].answers == ("loud ish",)
    assert items["sound_events"].answers == ("dog bark, rain",)  # multi-label: joined
    assert "speech_speaker" not in items  # skipped: identity labels


def test_describe_items_follow_caption_styles():
    items = [it for it in build_qa_items([SPEECH, MUSIC, SOUND]) if it.clip == 0]
    tasks = by_task(items)
    assert tasks["describe"].question == "Describe the audio."
    assert tasks["describe"].answers == ("A woman speaks German.",)  # speaking style excluded
    assert tasks["speaking_style"].question == "Describe the speaker's style."
    assert tasks["speaking_style"].answers == ("Speaking style: fast, animated.",)
    music = by_task(it for it in build_qa_items([SPEECH, MUSIC, SOUND]) if it.clip == 1)
    assert music["describe"].answers == ("Piano.",) and "speaking_style" not in music
    sound = by_task(it for it in build_qa_items([SPEECH, MUSIC, SOUND]) if it.clip == 2)
    assert "describe" not in sound  # no caption, no describe item
    # styles unknown: every caption describes the audio, no speaking-style item
    unknown = ClipRecord("s2", {}, SPEECH.captions, None)
    got = by_task(build_qa_items([unknown]))
    assert got["describe"].answers == tuple(SPEECH.captions) and "speaking_style" not in got
    assert not any(it.task == "describe" for it in build_qa_items([SPEECH], describe=False))


def test_deterministic_from_the_seed_and_independent_of_the_other_clips():
    recs = [ClipRecord(f"c{i}", {"speech_gender": "male"}, []) for i in range(40)]
    a, b = build_qa_items(recs, seed=3), build_qa_items(recs, seed=3)
    assert a == b
    assert len({it.question for it in a}) == 2  # both phrasings are used
    assert [it.question for it in build_qa_items(recs, seed=4)] != [it.question for it in a]
    alone = build_qa_items(recs[7:8], seed=3)[0]
    assert alone.question == a[7].question  # a clip's phrasing depends on its id only


def test_tasks_filter_and_label_answer():
    items = build_qa_items([SPEECH, MUSIC], tasks=["speech_gender", "describe"])
    assert sorted({it.task for it in items}) == ["describe", "speech_gender"]
    assert label_answer(None) is None and label_answer([]) is None
    assert label_answer(["a_b", "c"]) == "a b, c"


def test_custom_template_file_and_errors(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text(
        "version: 7\n"
        "tasks:\n"
        "  speech_gender: {questions: 'Who speaks?', answer: 'a {label} voice'}\n"
        "fallback: null\n"
        "describe: []\n"
    )
    t = load_templates(path)
    assert t.tag.startswith("7:") and len(t.tag) == 10
    items = by_task(build_qa_items([SPEECH, MUSIC], t))
    assert items["speech_gender"].question == "Who speaks?"
    assert items["speech_gender"].answers == ("a female voice",)
    assert set(items) == {"speech_gender"}  # no fallback, no describe templates
    path.write_text("tasks: {}\n")
    with pytest.raises(ConfigError, match="'version' is required"):
        load_templates(path)
    path.write_text("version: 1\ntask: {}\n")
    with pytest.raises(ConfigError, match="unknown keys"):
        load_templates(path)
    path.write_text("version: 1\ntasks: {speech_gender: {questions: 'Q?', answer: no label}}\n")
    with pytest.raises(ConfigError, match=r"must contain '\{label\}'"):
        load_templates(path)
    with pytest.raises(ConfigError, match="not found"):
        load_templates(tmp_path / "missing.yaml")


def test_records_from_cuts_and_embeddings_agree(tmp_path):
    cuts = []
    for rec in (SPEECH, MUSIC):
        custom = {"caption": list(rec.captions), "domain": rec.cut_id[0], "source": "t"}
        custom["caption_style"] = list(rec.caption_styles or ["short"] * len(rec.captions))
        custom.update(rec.labels)
        sup = SupervisionSegment(rec.cut_id, rec.cut_id, 0.0, 1.0, custom=custom)
        cuts.append(MonoCut(rec.cut_id, 0.0, 1.0, 0, supervisions=[sup]))
    from_cuts = records_from_cuts(CutSet.from_cuts(cuts))
    assert from_cuts[0].caption_styles == ["short", "speaking_style"]
    assert dict(from_cuts[1].labels) == dict(MUSIC.labels)  # domain/source are not labels
    es = EmbeddingSet(
        ["s1", "m1"],
        torch.zeros(2, 3),
        None,
        {"speech_gender": ["female", None], "music_instrument": [None, "piano"]},
        [list(SPEECH.captions), list(MUSIC.captions)],
        extra={"caption_styles": [list(SPEECH.caption_styles), ["short"]]},
    )
    recs = records_from_embeddings(es)
    assert dict(recs[0].labels) == {"speech_gender": "female"}
    items = build_qa_items(recs)
    assert by_task(items)["speaking_style"].answers == ("Speaking style: fast, animated.",)
    write_qa_jsonl(items, tmp_path / "qa.jsonl")
    lines = [json.loads(x) for x in (tmp_path / "qa.jsonl").read_text().splitlines()]
    assert len(lines) == len(items) and lines[0]["cut_id"] == "s1"
