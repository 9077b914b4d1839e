"""The embedded ledger: plain sqlite3 on the store's SQLite file, the fast path of ``tidal map``.

SQLAlchemy costs several microseconds per row; this writes a whole message with one
``executemany`` inside ``BEGIN IMMEDIATE … COMMIT``, so the per-item cost of a job stays a few
microseconds. The tables are the same as :class:`~tidal.jobs.sql_ledger.SQLLedger`'s.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from typing import Any

from tidal.engines.base import BatchMessage
from tidal.errors import StoreError
from tidal.jobs.ledger import ItemStatus, JobCounts, JobStatus, Ledger, PartitionState, PartitionStatus
from tidal.types import ItemKey, JobId, PartitionId


class SQLiteLedger(Ledger):
    """One job's ledger on a sqlite3 connection in autocommit mode (see ``tidal.database.connect``)."""

    def __init__(self, connection: sqlite3.Connection, job_id: JobId) -> None:
        self.db = connection
        self.job_id = job_id

    def register(self, name: str, config: dict[str, Any], config_file: str | None) -> None:
        now = time.time()
        self.db.execute(
            "INSERT INTO jobs (id, name, config, config_file, created_at, updated_at, status)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET"
            " updated_at = excluded.updated_at, status = excluded.status,"
            " config_file = COALESCE(excluded.config_file, jobs.config_file)",
            (self.job_id, name, json.dumps(config, sort_keys=True), config_file, now, now,
             JobStatus.RUNNING.value),
        )

    def set_status(self, status: JobStatus, total_items: int | None = None) -> None:
        self.db.execute(
            "UPDATE jobs SET status = ?, updated_at = ?, total_items = COALESCE(?, total_items)"
            " WHERE id = ?",
            (status.value, time.time(), total_items, self.job_id),
        )

    def partition_states(self) -> dict[PartitionId, PartitionState]:
        rows = self.db.execute("SELECT id, status, failed FROM partitions WHERE job_id = ?", (self.job_id,))
        return {pid: PartitionState(PartitionStatus(status), failed) for pid, status, failed in rows}

    def keys(self, partition_id: PartitionId, statuses: Iterable[ItemStatus]) -> set[ItemKey]:
        wanted = [status.value for status in statuses]
        marks = ",".join("?" * len(wanted))
        rows = self.db.execute(
            f"SELECT key FROM items WHERE job_id = ? AND partition_id = ? AND status IN ({marks})",
            (self.job_id, partition_id, *wanted),
        )
        return {key for (key,) in rows}

    def record(self, message: BatchMessage) -> None:
        with _transaction(self.db):
            self.db.executemany(
                "INSERT OR REPLACE INTO items (job_id, partition_id, key, status, path,"
                " frame_index, meta, result, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                message.rows,
            )
            if message.end is not None:
                self._close_partition(message.partition_id, *message.end)

    def _close_partition(self, partition_id: PartitionId, status: str, error: str | None) -> None:
        (items, failed) = self.db.execute(
            "SELECT COUNT(*), COALESCE(SUM(status = ?), 0) FROM items WHERE job_id = ? AND partition_id = ?",
            (ItemStatus.FAILED.value, self.job_id, partition_id),
        ).fetchone()
        self.db.execute(
            "INSERT OR REPLACE INTO partitions (job_id, id, status, items, failed, error)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (self.job_id, partition_id, status, items, failed, error),
        )

    def counts(self) -> JobCounts:
        rows = self.db.execute(
            "SELECT status, COUNT(*) FROM items WHERE job_id = ? GROUP BY status", (self.job_id,)
        )
        by_status = dict(rows.fetchall())
        (failed_partitions,) = self.db.execute(
            "SELECT COUNT(*) FROM partitions WHERE job_id = ? AND status = ?",
            (self.job_id, PartitionStatus.FAILED.value),
        ).fetchone()
        return JobCounts(by_status.get(ItemStatus.DONE.value, 0), by_status.get(ItemStatus.FAILED.value, 0),
                         failed_partitions)

    def close(self) -> None:
        self.db.close()


class _transaction:
    """BEGIN IMMEDIATE … COMMIT, rolled back on error (the connection is in autocommit mode)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        self.db.execute("COMMIT" if kind is None else "ROLLBACK")
        if isinstance(error, sqlite3.Error):
            raise StoreError(f"the job ledger could not record a batch ({type(error).__name__}: {error}); "
                             "nothing of it was written, so a resume does it again") from error
