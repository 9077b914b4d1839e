"""The behaviour every Source must have. Mixed into one test class per source.

Named ``source_suite`` (like ``tracking/store_suite.py``), not ``suite``: test folders are not
packages, so a second module named ``suite`` would be shadowed by ``tests/engines/suite.py``.

Two levels:

- :class:`SourceSuite`, for every source. The class defines a ``source`` fixture: a fresh
  source over real media with at least two partitions.
- :class:`FileSourceSuite`, for sources that read files. The class defines ``media_files``
  (at least two real media files of different content, copied into ``tmp_path`` so tests may
  change them; the first one is the one the damage tests spoil, so pick one whose damage a
  decoder can notice, e.g. a PNG rather than a JPEG) and ``make_source`` (a function of
  ``paths`` building the source with the class's options). ``source`` is built from them.
  The files are reached through the ``media`` fixture: :class:`LocalMedia` (the files
  themselves) unless the class swaps in another store (``test_s3.py`` puts them in a bucket).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pickle
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tidal.errors import SourceError
from tidal.sources.base import Item, ItemFailure, Partition, Source

MakeSource = Callable[[str | list[str]], Source]
Outcome = Item | ItemFailure
SMALL_PAYLOAD = 64 * 1024  # bytes; a payload holding decoded pixels would be megabytes
DAMAGES = ("truncated", "corrupt", "not_media", "empty")
_HERE = Path(__file__).resolve().parent
_CHILD = "import sys; sys.path.insert(0, sys.argv[1]); import source_suite; source_suite.describe_from_stdin()"


def digest(value: Any) -> str:
    """A short content hash of an item's data (arrays, dataclasses such as Clip, plain values),
    so readings compare by content across reads and across processes."""
    hasher = hashlib.sha256()
    _feed(hasher, value)
    return hasher.hexdigest()[:16]


def _feed(hasher: Any, value: Any) -> None:
    if isinstance(value, np.ndarray):
        hasher.update(repr((value.shape, value.dtype.str)).encode())
        hasher.update(np.ascontiguousarray(value).tobytes())
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for field in dataclasses.fields(value):
            _feed(hasher, getattr(value, field.name))
    else:
        hasher.update(repr(value).encode())


def summary(outcome: Outcome) -> list[str]:
    """``[key, what was read]``: the data's digest and meta for an item, the error for a failure."""
    meta = json.dumps(outcome.meta, sort_keys=True, default=str)
    if isinstance(outcome, ItemFailure):
        return [outcome.key, f"failed: {outcome.error} {meta}"]
    return [outcome.key, f"{digest(outcome.data)} {meta}"]


def reading(source: Source, partition: Partition) -> list[list[str]]:
    return [summary(outcome) for outcome in source.read(partition)]


def listing(partitions: list[Partition]) -> list[list[Any]]:
    """What a listing promises: ids, sizes and payloads (by repr, comparable across processes)."""
    return [[partition.id, partition.size, repr(partition.payload)] for partition in partitions]


def describe(source: Source) -> dict[str, Any]:
    """A source's listing and the reading of every partition, as JSON-ready lists."""
    partitions = source.partitions()
    return {
        "listing": listing(partitions),
        "readings": [reading(source, partition) for partition in partitions],
    }


def describe_from_stdin() -> None:
    """In a child process: unpickle a source from stdin, print :func:`describe` of it as JSON."""
    source = pickle.load(sys.stdin.buffer)
    print(json.dumps(describe(source)))


def describe_in_another_process(source: Source) -> dict[str, Any]:
    """:func:`describe` run by a fresh interpreter with another hash seed than this one's."""
    seed = "2" if os.environ.get("PYTHONHASHSEED") == "1" else "1"
    completed = subprocess.run(
        [sys.executable, "-c", _CHILD, str(_HERE)],
        input=pickle.dumps(source),
        capture_output=True,
        env={**os.environ, "PYTHONHASHSEED": seed},
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr.decode(errors="replace")
    return json.loads(completed.stdout)  # type: ignore[no-any-return]


def keys(outcomes: list[list[str]]) -> list[str]:
    return [key for key, _ in outcomes]


class SourceSuite:
    """Tests every source must pass: a cheap deterministic listing, exact sizes, unique stable
    keys, and sources and partitions that travel to worker processes intact."""

    def test_listing_is_the_same_every_time(self, source: Source) -> None:
        first = source.partitions()
        assert len(first) >= 2, "the fixture should give a source with several partitions"
        assert listing(source.partitions()) == listing(first)
        assert [p.payload for p in source.partitions()] == [p.payload for p in first]

    def test_another_process_lists_and_reads_the_same(self, source: Source) -> None:
        here = json.loads(json.dumps(describe(source)))  # tuples become lists, as in the child's
        assert describe_in_another_process(source) == here

    def test_partition_ids_are_unique_and_payloads_small(self, source: Source) -> None:
        partitions = source.partitions()
        assert len({partition.id for partition in partitions}) == len(partitions)
        for partition in partitions:
            assert len(pickle.dumps(partition)) < SMALL_PAYLOAD, f"{partition.id} is not cheap to send"

    def test_each_partition_yields_its_declared_size(self, source: Source) -> None:
        for partition in source.partitions():
            outcomes = list(source.read(partition))
            assert partition.size is None or len(outcomes) == partition.size, partition.id
            assert all(isinstance(outcome, Item | ItemFailure) for outcome in outcomes)

    def test_keys_are_unique_across_partitions(self, source: Source) -> None:
        found = [key for partition in source.partitions() for key in keys(reading(source, partition))]
        assert found and len(set(found)) == len(found)

    def test_a_second_read_gives_the_same_items(self, source: Source) -> None:
        partitions = source.partitions()
        first = [reading(source, partition) for partition in partitions]
        backwards = [reading(source, partition) for partition in reversed(partitions)]
        assert first == backwards[::-1]  # and reading order does not matter: no state between reads

    def test_source_and_partitions_pickle_and_read_the_same(self, source: Source) -> None:
        partitions = source.partitions()
        travelled_source = pickle.loads(pickle.dumps(source))
        travelled = pickle.loads(pickle.dumps(partitions))
        assert travelled == partitions
        assert [reading(travelled_source, p) for p in travelled] == [reading(source, p) for p in partitions]


class LocalMedia:
    """Where a file suite's media live, and how a test changes them: here, the local files.

    Tests name files by their local path under ``tmp_path``; another store (a bucket) mirrors
    them and gives each a location of its own.
    """

    def location(self, path: Path) -> str:
        """What a source's ``paths`` names ``path`` by (and what its items' meta say)."""
        return str(path)

    def locations(self, paths: list[Path]) -> list[str]:
        return [self.location(path) for path in paths]

    def write(self, path: Path, data: bytes) -> None:
        """Create or replace a file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def remove(self, path: Path) -> None:
        path.unlink()

    def touch(self, path: Path) -> None:
        """Give a file a new modification time, keeping its content."""
        os.utime(path, (1_000_000, 1_000_000))

    def make_empty_folder(self, path: Path) -> None:
        path.mkdir()


class FileSourceSuite(SourceSuite):
    """Tests every source reading files must pass, besides :class:`SourceSuite`'s: keys follow
    content, damaged files are reported naming them, missing inputs are SourceErrors."""

    @pytest.fixture
    def media(self) -> LocalMedia:
        return LocalMedia()

    @pytest.fixture
    def source(self, make_source: MakeSource, media_files: list[Path], media: LocalMedia) -> Source:
        return make_source(media.locations(media_files))

    def reports_damage(self, item: Item) -> bool:
        """Whether a decoded item says itself that it is damaged (a source that conceals
        damaged parts but counts them overrides this)."""
        return False

    def test_an_unchanged_file_keeps_its_keys(
        self, make_source: MakeSource, media_files: list[Path], media: LocalMedia
    ) -> None:
        before = describe(make_source(media.locations(media_files)))
        for path in media_files:
            media.touch(path)
        assert describe(make_source(media.locations(media_files))) == before

    def test_a_changed_file_gets_new_keys_and_partition_ids(
        self, make_source: MakeSource, media_files: list[Path], media: LocalMedia
    ) -> None:
        before = keys_by_partition(make_source(media.locations(media_files)))
        for changed, other in zip(media_files, [*media_files[1:], media_files[0]], strict=True):
            original = changed.read_bytes()
            media.write(changed, other.read_bytes())
            after = keys_by_partition(make_source(media.locations(media_files)))
            media.write(changed, original)
            check_change(before, after, media.location(changed))

    def test_a_file_changed_after_listing_is_not_read_as_listed(
        self, make_source: MakeSource, media_files: list[Path], media: LocalMedia
    ) -> None:
        changed, other = media_files[0], media_files[1]
        source = make_source(media.location(changed))
        partitions = source.partitions()
        media.write(changed, other.read_bytes())
        for outcome in outcomes_or_errors(source, partitions):
            assert not isinstance(outcome, Item), f"{outcome.key} was read from a changed file"
            assert media.location(changed) in message(outcome) and "changed" in message(outcome)

    def test_a_file_removed_after_listing_is_reported_naming_it(
        self, make_source: MakeSource, media_files: list[Path], media: LocalMedia
    ) -> None:
        source = make_source(media.locations(media_files))
        partitions = source.partitions()
        removed = media.location(media_files[0])
        media.remove(media_files[0])
        outcomes = list(outcomes_or_errors(source, partitions))
        about_it = [outcome for outcome in outcomes if removed in describe_outcome(outcome)]
        assert about_it, f"nothing said that {removed} is gone"
        for outcome in about_it:
            assert not isinstance(outcome, Item), f"{outcome.key} was read from a removed file"
            assert removed in message(outcome)
        assert any(isinstance(outcome, Item) for outcome in outcomes), "the other files were not read"

    @pytest.mark.parametrize("damage", DAMAGES)
    def test_a_damaged_file_is_reported_naming_it(
        self, make_source: MakeSource, media_files: list[Path], media: LocalMedia, tmp_path: Path, damage: str
    ) -> None:
        copy = damaged_copy(media_files[0], damage, tmp_path / "damaged")
        media.write(copy, copy.read_bytes())
        broken = media.location(copy)
        source, reported = make_source(broken), False
        try:
            partitions = source.partitions()
        except SourceError as error:  # refusing the file at listing is fine, if it is named
            assert broken in str(error)
            return
        for partition in partitions:
            outcomes = list(outcomes_or_errors(source, [partition]))
            if not any(isinstance(outcome, Exception) for outcome in outcomes):
                assert partition.size is None or len(outcomes) == partition.size, partition.id
            reported |= self.damage_reported(outcomes, broken)
        assert reported, f"a {damage} file was read without a word"

    def damage_reported(self, outcomes: list[Outcome | SourceError], broken: str) -> bool:
        """Whether ``outcomes`` say the file is damaged; every failure and error must name it."""
        reported = False
        for outcome in outcomes:
            if isinstance(outcome, Item):
                reported |= self.reports_damage(outcome)
            else:
                assert broken in message(outcome), f"{broken} is not named in: {message(outcome)}"
                reported = True
        return reported

    def test_missing_inputs_are_source_errors_naming_them(
        self, make_source: MakeSource, media_files: list[Path], media: LocalMedia, tmp_path: Path
    ) -> None:
        suffix = "".join(media_files[0].suffixes)
        media.make_empty_folder(tmp_path / "empty")
        for paths in (
            media.location(tmp_path / f"missing{suffix}"),
            media.location(tmp_path / "nowhere" / "**" / f"*{suffix}"),
            media.location(tmp_path / "empty"),
        ):
            with pytest.raises(SourceError) as raised:
                make_source(paths).partitions()
            assert paths in str(raised.value) and "check" in str(raised.value)
        with pytest.raises(SourceError, match="paths is empty; give a file, a folder, a glob"):
            make_source([]).partitions()


def keys_by_partition(source: Source) -> dict[str, list[tuple[str, str]]]:
    """Each partition's id and its ``(key, path)`` pairs."""
    return {
        partition.id: [(outcome.key, outcome.meta["path"]) for outcome in source.read(partition)]
        for partition in source.partitions()
    }


def check_change(
    before: dict[str, list[tuple[str, str]]], after: dict[str, list[tuple[str, str]]], changed: str
) -> None:
    """A changed file's keys are all new; nothing else changes; a partition that kept its id
    (which a resumed job skips when it is finished) holds exactly the keys it held."""
    for partition_id, found in after.items():
        if partition_id in before:
            assert found == before[partition_id], f"partition {partition_id} kept its id but not its keys"
    old = {key for found in before.values() for key in found}
    new = {key for found in after.values() for key in found}
    assert {key for key, path in new if path == changed}.isdisjoint({key for key, path in old})
    assert {pair for pair in new if pair[1] == changed}, f"{changed} yields nothing once changed"
    assert {pair for pair in new if pair[1] != changed} == {pair for pair in old if pair[1] != changed}


def outcomes_or_errors(source: Source, partitions: list[Partition]) -> Iterator[Outcome | SourceError]:
    """What reading yields, with a SourceError (or DecodeError) raised by a partition last.

    Any other exception (a raw PyAV or Pillow one) propagates and fails the test.
    """
    for partition in partitions:
        try:
            yield from list(source.read(partition))
        except SourceError as error:
            yield error


def describe_outcome(outcome: Outcome | SourceError) -> str:
    """An outcome's key and path, or an error's message: what it is about."""
    if isinstance(outcome, SourceError):
        return str(outcome)
    return f"{outcome.key} {outcome.meta.get('path')}"


def message(outcome: ItemFailure | SourceError) -> str:
    return outcome.error if isinstance(outcome, ItemFailure) else str(outcome)


def damaged_copy(original: Path, damage: str, folder: Path) -> Path:
    """A copy of ``original`` (same suffix) cut to 40 %, with 4000 random bytes over its middle,
    replaced by text, or empty."""
    data = original.read_bytes()
    if damage == "truncated":
        data = data[: len(data) * 4 // 10]
    elif damage == "corrupt":
        middle = len(data) // 2
        noise = np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes()
        data = data[:middle] + noise + data[middle + len(noise) :]
    elif damage == "not_media":
        data = b"this is not what its name says\n" * 40
    else:
        data = b""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{damage}{''.join(original.suffixes)}"
    target.write_bytes(data)
    return target

