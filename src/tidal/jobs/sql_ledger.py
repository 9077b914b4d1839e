"""The SQL ledger: SQLAlchemy Core over the store's tables, for PostgreSQL (teams) or SQLite.

A message is one transaction: its rows in one batched upsert (``INSERT … ON CONFLICT DO
UPDATE``, so a message written twice changes nothing), then, when it closes its partition, the
partition's counts taken from the items themselves.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

from sqlalchemy import case, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from tidal.database import Guarded
from tidal.engines.base import BatchMessage
from tidal.jobs.ledger import ItemStatus, JobCounts, JobStatus, Ledger, PartitionState, PartitionStatus
from tidal.tracking import schema
from tidal.types import ItemKey, JobId, PartitionId

_ROW_COLUMNS = ("job_id", "partition_id", "key", "status", "path", "frame_index", "meta", "result", "error")


class SQLLedger(Ledger):
    """One job's ledger through a SQLAlchemy engine (the store's)."""

    def __init__(self, engine: Engine, job_id: JobId) -> None:
        self.engine = engine
        self.job_id = job_id
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert

    def register(self, name: str, config: dict[str, Any], config_file: str | None) -> None:
        now = time.time()
        statement = self._insert(schema.jobs).values(
            id=self.job_id, name=name, config=json.dumps(config, sort_keys=True), config_file=config_file,
            created_at=now, updated_at=now, status=JobStatus.RUNNING.value)
        statement = statement.on_conflict_do_update(index_elements=["id"], set_={
            "updated_at": now, "status": JobStatus.RUNNING.value,
            "config_file": func.coalesce(statement.excluded.config_file, schema.jobs.c.config_file)})
        with self._begin() as connection:
            connection.execute(statement)

    def set_status(self, status: JobStatus, total_items: int | None = None) -> None:
        jobs = schema.jobs
        values: dict[str, Any] = {"status": status.value, "updated_at": time.time()}
        if total_items is not None:
            values["total_items"] = total_items
        with self._begin() as connection:
            connection.execute(update(jobs).where(jobs.c.id == self.job_id).values(**values))

    def partition_states(self) -> dict[PartitionId, PartitionState]:
        table = schema.partitions
        query = select(table.c.id, table.c.status, table.c.failed).where(table.c.job_id == self.job_id)
        with self._connect() as connection:
            return {pid: PartitionState(PartitionStatus(status), failed)
                    for pid, status, failed in connection.execute(query)}

    def keys(self, partition_id: PartitionId, statuses: Iterable[ItemStatus]) -> set[ItemKey]:
        items = schema.items
        query = select(items.c.key).where(items.c.job_id == self.job_id, items.c.partition_id == partition_id,
                                          items.c.status.in_([status.value for status in statuses]))
        with self._connect() as connection:
            return {key for (key,) in connection.execute(query)}

    def record(self, message: BatchMessage) -> None:
        self.record_many([message])

    def record_many(self, messages: list[BatchMessage]) -> None:
        """Several messages in one transaction, in order (the server applies a client's group so)."""
        with self._begin() as connection:
            for message in messages:
                self._write(connection, message)

    def _write(self, connection: Connection, message: BatchMessage) -> None:
        if message.rows:
            statement = self._insert(schema.items)
            replaced = {name: statement.excluded[name] for name in _ROW_COLUMNS[3:]}
            connection.execute(
                statement.on_conflict_do_update(index_elements=list(_ROW_COLUMNS[:3]), set_=replaced),
                [dict(zip(_ROW_COLUMNS, row, strict=True)) for row in message.rows])
        if message.end is not None:
            self._close_partition(connection, message.partition_id, *message.end)

    def _close_partition(self, connection: Connection, partition_id: PartitionId, status: str,
                         error: str | None) -> None:
        items = schema.items
        failed = func.coalesce(func.sum(case((items.c.status == ItemStatus.FAILED.value, 1), else_=0)), 0)
        count, failed_count = connection.execute(
            select(func.count(), failed).where(items.c.job_id == self.job_id,
                                               items.c.partition_id == partition_id)).one()
        statement = self._insert(schema.partitions).values(
            job_id=self.job_id, id=partition_id, status=status, items=count, failed=failed_count, error=error)
        connection.execute(statement.on_conflict_do_update(
            index_elements=["job_id", "id"],
            set_={"status": status, "items": count, "failed": failed_count, "error": error}))

    def counts(self) -> JobCounts:
        items, partitions = schema.items, schema.partitions
        with self._connect() as connection:
            by_status = dict(connection.execute(  # type: ignore[arg-type]
                select(items.c.status, func.count()).where(items.c.job_id == self.job_id)
                .group_by(items.c.status)).all())
            failed_partitions = connection.execute(
                select(func.count()).where(partitions.c.job_id == self.job_id,
                                           partitions.c.status == PartitionStatus.FAILED.value)).scalar_one()
        return JobCounts(by_status.get(ItemStatus.DONE.value, 0), by_status.get(ItemStatus.FAILED.value, 0),
                         failed_partitions)

    def _begin(self) -> Any:
        return Guarded(self.engine, begin=True)

    def _connect(self) -> Any:
        return Guarded(self.engine, begin=False)
