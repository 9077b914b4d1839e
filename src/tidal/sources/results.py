"""An earlier job's results as a source: how a pipeline step reads the step before it.

The partitions are the earlier step's partitions (same ids: a source's partitions are named by
their file's content, so a replaced video is a new partition in every step after it). A worker
reads one partition's rows through the store — never a second copy of the data — and yields
one item per row: ``data`` is the row (a dict of JSON values), the key is the row's key plus a
digest of the row, so a changed input row is a new item. Rows failing ``where`` are left out.

An earlier partition that failed, or holds failed items, still gives its good rows, then fails
this partition too (saying why): a step is never complete, hence never reused, over an
incomplete input; the next run retries both.

Example::

    source = StepResults(store_address(store), "3f2a9c01b2d4", [("a.mp4@1f:0-255", 256, "")], where=("complete",))
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from tidal.errors import DecodeError
from tidal.sources.base import Item, ItemFailure, Partition, Source
from tidal.status import ItemStatus

if TYPE_CHECKING:
    from tidal.tracking.store import Store

META_FIELDS = ("path", "frame_index", "time", "member", "index")


class StepResults(Source):
    """The done rows of job ``job_id`` in the listed partitions ``(id, size, problem)``; a non-empty
    ``problem`` fails the partition after its rows (the earlier step did not finish it cleanly)."""

    def __init__(self, store: str, job_id: str, partitions: list[tuple[str, int | None, str]],
                 where: tuple[str, ...] = ()) -> None:
        self.store = store  # an address for open_store: sqlite:///…, postgresql://…, http(s)://…
        self.job_id = job_id
        self.listed = partitions
        self.where = tuple(where)

    def partitions(self) -> list[Partition]:
        return [Partition(partition_id, size, problem) for partition_id, size, problem in self.listed]

    def read(self, partition: Partition) -> Iterator[Item | ItemFailure]:
        for row in partition_rows(_open(self.store), self.job_id, partition.id):
            if all(row.get(name) for name in self.where):
                yield row_item(row)
        if partition.payload:
            raise DecodeError(partition.payload)


def row_item(row: dict[str, Any]) -> Item:
    """An earlier row as an item: keyed by its key and content, carrying its metadata along."""
    text = json.dumps(row, sort_keys=True, separators=(",", ":"), default=str)
    content = hashlib.sha256(text.encode()).hexdigest()[:10]
    meta = {name: row[name] for name in META_FIELDS if name in row}
    return Item(f"{row['key']}#{content}", row, meta)


def partition_rows(store: Store, job_id: str, partition_id: str) -> Iterator[dict[str, Any]]:
    """One partition's done rows, flat (key, metadata, result fields) like ``store.results``.

    A SQL store (SQLite, PostgreSQL) is asked for just that partition (its primary key leads with
    job and partition); other stores stream the job's results and keep the partition's keys.
    """
    engine = getattr(store, "engine", None)
    if engine is not None:
        yield from _sql_rows(engine, job_id, partition_id)
        return
    ledger = store.ledger(job_id)
    try:
        keys = ledger.keys(partition_id, [ItemStatus.DONE])
    finally:
        ledger.close()
    yield from (row for row in store.results(job_id) if row["key"] in keys)


def _sql_rows(engine: Any, job_id: str, partition_id: str) -> Iterator[dict[str, Any]]:
    from sqlalchemy import select

    from tidal.tracking import schema

    items = schema.items
    query = (select(items.c.key, items.c.meta, items.c.result)
             .where(items.c.job_id == job_id, items.c.partition_id == partition_id,
                    items.c.status == ItemStatus.DONE.value)
             .order_by(items.c.frame_index.nulls_first(), items.c.key))
    with engine.connect() as connection:
        for key, meta, result in connection.execute(query):
            yield {"key": key, **json.loads(meta or "{}"), **json.loads(result or "{}")}


def store_address(store: Store) -> str:
    """Where a worker process opens the same store: its URL."""
    engine = getattr(store, "engine", None)
    if engine is not None:
        return str(engine.url.render_as_string(hide_password=False))
    return str(store.url)  # type: ignore[attr-defined]


@lru_cache(maxsize=4)
def _open(address: str) -> Store:
    """One store per worker process and address (opened on the first partition it reads)."""
    from tidal.tracking.stores import open_store

    return open_store(address)
