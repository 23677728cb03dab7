"""Lhotse Shar directories read shard by shard, with audio fetched from the tar by offset.

A Shar directory (what :func:`toolkit.data.aggregate.mix.export_shar` writes) holds
``cuts.<n>.jsonl.gz`` and, unless the audio was left in place (``reference``),
``recording.<n>.tar`` with the members ``<cut id>.<flac|wav>`` + ``<cut id>.json`` per cut.

Lhotse's own reader (``CutSet.from_shar``) streams a tar in lockstep with its cuts and attaches
the audio bytes to every cut it yields. The training stream instead reads the cut metadata only
and gives each cut a reference ``custom["shar_audio"] = [tar path, offset, size]``;
:func:`with_shar_audio` reads those bytes when the batch is built. Skipping cuts (an exact
mid-epoch resume) then costs metadata parsing only, never audio reads, and a sampler's buffer
holds no audio.
"""

from __future__ import annotations

import gzip
import json
import logging
import re
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from lhotse.audio import AudioSource
from lhotse.cut import Cut
from lhotse.serialization import deserialize_item
from lhotse.utils import fastcopy

log = logging.getLogger(__name__)

_CUTS = re.compile(r"^cuts\.(\d+)\.jsonl(\.gz)?$")
AUDIO_KEY = "shar_audio"


class SharError(ValueError):
    """A Shar directory that cannot be read (no shards, a missing tar)."""


@dataclass(frozen=True)
class Shard:
    """One shard: its cut manifest and (None for ``reference`` Shar) its recording tar."""

    cuts: Path
    recording: Path | None


def list_shards(shar_dir: Path) -> list[Shard]:
    """The shards of ``shar_dir`` in index order.

    Raises:
        SharError: no ``cuts.<n>.jsonl.gz`` in the directory, or some shards have a
            ``recording`` tar and others do not (a shard was lost or not copied).
    """
    shar_dir = Path(shar_dir)
    found = sorted((int(m.group(1)), p) for p in shar_dir.iterdir() if (m := _CUTS.match(p.name)))
    if not found:
        raise SharError(f"{shar_dir}: no Shar shards (cuts.<n>.jsonl.gz) in this directory")
    shards = []
    for n, cuts in found:
        tar = shar_dir / f"recording.{n:06d}.tar"
        shards.append(Shard(cuts, tar if tar.exists() else None))
    with_audio = [s for s in shards if s.recording is not None]
    if with_audio and len(with_audio) != len(shards):
        lost = next(s for s in shards if s.recording is None)
        raise SharError(
            f"{shar_dir}: {len(shards) - len(with_audio)} of {len(shards)} shards have no "
            f"recording tar (first: {lost.cuts.name} has no "
            f"{lost.cuts.name.replace('cuts.', 'recording.').replace('.jsonl.gz', '.tar')}); "
            "copy the missing files or re-export the Shar"
        )
    return shards


def iter_cut_dicts(path: Path) -> Iterator[dict[str, Any]]:
    """The cut dicts of a ``.jsonl(.gz)`` manifest, in file order. A truncated or corrupt file
    ends the iteration with a warning naming it (the cuts before the damage are kept)."""
    opener = gzip.open if str(path).endswith(".gz") else open
    n = 0
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    d = json.loads(line)
                    n += 1
                    yield d
    except (OSError, EOFError, json.JSONDecodeError, UnicodeDecodeError) as e:
        log.warning(
            "%s is damaged after %d cuts (%s: %s); the rest of this file is skipped",
            path,
            n,
            type(e).__name__,
            e,
        )


@lru_cache(maxsize=64)  # a slot's shards, read twice per epoch (bucket estimate + batches)
def tar_index(path: Path) -> dict[str, tuple[int, int]]:
    """``{member name: (data offset, size)}`` of a tar, read from its headers only (seeks over
    the data). A truncated tar gives the members before the damage, with a warning."""
    out: dict[str, tuple[int, int]] = {}
    try:
        with tarfile.open(path, mode="r:") as tar:
            for m in tar:
                if m.isfile():
                    out[m.name] = (m.offset_data, m.size)
    except (tarfile.TarError, OSError, EOFError) as e:
        log.warning(
            "%s is damaged after %d members (%s); later cuts are skipped", path, len(out), e
        )
    return out


def audio_member(index: dict[str, tuple[int, int]], cut_id: str) -> tuple[int, int] | None:
    """Offset and size of the audio member of ``cut_id`` (any extension but ``.json``)."""
    for ext in ("flac", "wav", "opus", "mp3", "ogg"):
        hit = index.get(f"{cut_id}.{ext}")
        if hit is not None:
            return hit
    return None


def read_shard(shard: Shard, keep: Any = None) -> Iterator[Cut]:
    """Cuts of one shard in file order; ``keep(position, cut dict) -> bool`` selects which are
    deserialised (a stripe of the shard, a subset). Cuts whose audio is in the tar carry
    ``custom["shar_audio"]``; one whose member is missing (truncated tar) carries a reference
    to nothing and is skipped, counted, when its batch is loaded."""
    index = tar_index(shard.recording) if shard.recording is not None else None
    for pos, d in enumerate(iter_cut_dicts(shard.cuts)):
        if keep is not None and not keep(pos, d):
            continue
        cut = deserialize_item(d)
        if index is not None:
            hit = audio_member(index, cut.id)
            ref = [str(shard.recording), *(hit if hit else (-1, 0))]
            cut.custom = {**(cut.custom or {}), AUDIO_KEY: ref}
        yield cut


def with_shar_audio(cut: Cut) -> Cut:
    """``cut`` with its Shar audio bytes attached (a no-op for cuts without a reference).

    Raises:
        OSError: the tar member is missing (truncated tar) or cannot be read.
    """
    ref = (cut.custom or {}).get(AUDIO_KEY)
    if ref is None:
        return cut
    path, offset, size = ref[0], int(ref[1]), int(ref[2])
    if offset < 0:
        raise OSError(f"no audio member for cut {cut.id} in {path} (truncated tar?)")
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read(size)
    if len(data) != size:
        raise OSError(f"{path}: audio of cut {cut.id} is truncated ({len(data)} of {size} bytes)")
    rec = cut.recording
    src = AudioSource(type="memory", channels=rec.sources[0].channels, source=data)
    custom = {k: v for k, v in cut.custom.items() if k != AUDIO_KEY}
    return fastcopy(cut, recording=fastcopy(rec, sources=[src]), custom=custom or None)
