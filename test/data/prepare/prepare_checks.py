"""Checks shared by the corpus prepare tests (``test_prepare_<corpus>.py``): preparing a fake
corpus once per module, reading a prepared split's skipped list and summary, and the usual
assertions on the CLI help, on a rerun that must reuse the finished manifest and on the custom
fields of a cut. Imported as ``import prepare_checks as checks`` (pytest puts this folder on
``sys.path``); a test module gets its ``prepared`` fixture from :func:`prepared_fixture`."""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from lhotse import CutSet
from lhotse.cut import Cut

from toolkit.bin.prepare import main as prepare_main
from toolkit.data.cuts import cut_custom
from toolkit.data.prepare.common import manifest_path


@dataclasses.dataclass
class PreparedCorpus:
    """A fake corpus prepared by a test module: the corpus folder, the output folder, the cuts
    per split (a list, or ``{cut id: cut}``) and the manifest prefix ``name``; unpacks as
    ``corpus, out, cuts = prepared``."""

    name: str
    corpus: Path
    out: Path
    cuts: dict[str, list[Cut]] | dict[str, dict[str, Cut]]

    def __iter__(self) -> Iterator[Any]:
        return iter((self.corpus, self.out, self.cuts))

    def manifest(self, split: str) -> Path:
        """The manifest path of ``split``."""
        return manifest_path(self.out, self.name, split)

    def skipped(self, split: str) -> dict[str, str]:
        """``{item id: reason}`` of ``split``'s skipped list (see :func:`skipped_reasons`)."""
        return skipped_reasons(self.out, self.name, split)

    def summary(self, split: str) -> dict[str, Any]:
        """``split``'s parsed summary JSON."""
        return read_summary(self.out, self.name, split)

    def skipped_by_split(self) -> dict[str, dict[str, str]]:
        """``{split: {item id: reason}}`` over the prepared splits."""
        return {split: self.skipped(split) for split in self.cuts}


def prepare_fixture(
    tmp_path_factory: pytest.TempPathFactory,
    fixture: ModuleType,
    prepare: Callable[..., dict[str, CutSet]],
    name: str,
    by_id: bool = False,
) -> PreparedCorpus:
    """Write ``fixture``'s fake corpus (``fixture.write_fixture``) under a fresh temporary folder
    and prepare it with ``fixture.PREPARE_OPTIONS`` into its ``manifests`` folder, where the
    manifests are named ``<name>_cuts_<split>``; the cuts of a split are kept as a list, or as
    ``{cut id: cut}`` with ``by_id``."""
    root = tmp_path_factory.mktemp(name)
    corpus = fixture.write_fixture(root)
    out = root / "manifests"
    cuts = prepare(corpus, out, **fixture.PREPARE_OPTIONS)
    kept = cuts_by_id(cuts) if by_id else {split: list(cs) for split, cs in cuts.items()}
    return PreparedCorpus(name, corpus, out, kept)


def prepared_fixture(
    fixture: ModuleType,
    prepare: Callable[..., dict[str, CutSet]],
    name: str,
    by_id: bool = False,
) -> Any:
    """A module-scoped pytest fixture named ``prepared``: the :class:`PreparedCorpus` of
    :func:`prepare_fixture` (a test module assigns it: ``prepared = prepared_fixture(...)``)."""

    @pytest.fixture(scope="module")
    def prepared(tmp_path_factory: pytest.TempPathFactory) -> PreparedCorpus:
        return prepare_fixture(tmp_path_factory, fixture, prepare, name, by_id)

    return prepared


def cuts_by_id(cuts: Mapping[str, Iterable[Cut]]) -> dict[str, dict[str, Cut]]:
    """``{split: {cut id: cut}}`` of ``{split: cuts}``."""
    return {split: {c.id: c for c in cs} for split, cs in cuts.items()}


def ids_by_split(cuts: Mapping[str, Iterable[Cut]]) -> dict[str, list[str]]:
    """``{split: [cut id, ...]}`` in manifest order."""
    return {split: [c.id for c in cs] for split, cs in cuts.items()}


def skipped_reasons(out: Path, corpus: str, split: str) -> dict[str, str]:
    """``{item id: reason}`` of ``<out>/<corpus>_cuts_<split>.skipped.tsv`` (``{}`` when the
    split skipped nothing and so has no such file); checks the file's header line."""
    path = out / f"{corpus}_cuts_{split}.skipped.tsv"
    if not path.is_file():
        return {}
    lines = path.read_text().splitlines()
    assert lines[0] == "id\treason\tdetail"
    return {line.split("\t")[0]: line.split("\t")[1] for line in lines[1:]}


def read_summary(out: Path, corpus: str, split: str) -> dict[str, Any]:
    """The parsed ``<out>/<corpus>_cuts_<split>.summary.json``."""
    return json.loads((out / f"{corpus}_cuts_{split}.summary.json").read_text())


def assert_custom(cut: Cut, **expected: Any) -> None:
    """Each ``key=value`` of ``expected`` is the value of that custom field of ``cut``'s
    supervision."""
    custom = cut_custom(cut)
    for key, value in expected.items():
        assert custom[key] == value, f"{cut.id}: {key} is {custom.get(key)!r}, not {value!r}"


def assert_label_only_cut(cut: Cut, source: str, domain: str, **expected: Any) -> None:
    """``cut`` is a cut of a label-only corpus (no caption, no caption style) from ``source`` in
    ``domain``, and its other custom fields equal ``expected`` (see :func:`assert_custom`)."""
    assert_custom(cut, caption=[], caption_style=[], source=source, domain=domain, **expected)


def assert_cli_help_lists(capsys: pytest.CaptureFixture[str], corpus: str, *options: str) -> None:
    """``toolkit.bin.prepare <corpus> --help`` exits with status 0 and lists every option."""
    with pytest.raises(SystemExit) as e:
        prepare_main([corpus, "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for option in options:
        assert option in text, f"{option} not in the help of {corpus}"


def assert_rerun_reuses(manifest: Path, rerun: Callable[[], Any]) -> Any:
    """Calling ``rerun`` (a prepare with unchanged items and options) leaves ``manifest``
    untouched (the finished parts and manifest are reused); returns what ``rerun`` returned."""
    before = manifest.stat().st_mtime_ns
    result = rerun()
    assert manifest.stat().st_mtime_ns == before, f"{manifest} was written again"
    return result


def assert_cli_rerun_reuses(prepared: PreparedCorpus, split: str = "train", *args: str) -> None:
    """``toolkit.bin.prepare <name> --corpus-dir <corpus> --output-dir <out> [args]`` (the
    corpus prepared again through the CLI) succeeds and reuses ``split``'s finished manifest."""
    argv = [prepared.name, "--corpus-dir", str(prepared.corpus), "--output-dir", str(prepared.out)]
    rerun = functools.partial(prepare_main, [*argv, *args])
    assert assert_rerun_reuses(prepared.manifest(split), rerun) == 0


def assert_rerun_gives_same_cuts(
    prepared: PreparedCorpus, split: str, rerun: Callable[[], dict[str, CutSet]]
) -> None:
    """Preparing the corpus again (``rerun``) reuses ``split``'s finished manifest and returns
    the same cuts, in the same order, as the first run."""
    again = assert_rerun_reuses(prepared.manifest(split), rerun)
    first = prepared.cuts[split]
    first_cuts = first.values() if isinstance(first, dict) else first
    assert [c.id for c in again[split]] == [c.id for c in first_cuts]
