"""The ledger: which items of a job are done or failed, committed with their results.

Each message from an engine (one batch of one partition, possibly closing the partition) is
written in one transaction, so results and the ledger never disagree: after any crash an item
is either done with its result or not there at all.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from tidal.engines.base import BatchMessage
from tidal.types import ItemKey, JobId, PartitionId


class ItemStatus(str, Enum):
    DONE = "done"
    FAILED = "failed"


class PartitionStatus(str, Enum):
    DONE = "done"  # read to the end (some items may have failed)
    FAILED = "failed"  # could not be read to the end; the error says why


class JobStatus(str, Enum):
    RUNNING = "running"
    COMPLETED = "completed"  # every item done
    FAILED = "failed"  # finished, with failed items or partitions
    INTERRUPTED = "interrupted"  # stopped by a signal or a crash of tidal itself


@dataclass
class JobCounts:
    done: int = 0
    failed_items: int = 0
    failed_partitions: int = 0


class Ledger:
    """Reads and writes one job's ledger and results in the store's SQLite connection."""

    def __init__(self, connection: sqlite3.Connection, job_id: JobId) -> None:
        self.db = connection
        self.job_id = job_id

    def register(self, name: str, config: dict[str, Any], config_file: str | None) -> None:
        """Create the job row on first run; mark it running again on resume."""
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

    def partition_states(self) -> dict[PartitionId, tuple[str, int]]:
        """Each finished partition's status and number of failed items."""
        rows = self.db.execute(
            "SELECT id, status, failed FROM partitions WHERE job_id = ?", (self.job_id,)
        )
        return {pid: (status, failed) for pid, status, failed in rows}

    def keys(self, partition_id: PartitionId, statuses: Iterable[ItemStatus]) -> set[ItemKey]:
        """Keys of one partition's items whose status is one of ``statuses``."""
        wanted = [status.value for status in statuses]
        marks = ",".join("?" * len(wanted))
        rows = self.db.execute(
            f"SELECT key FROM items WHERE job_id = ? AND partition_id = ? AND status IN ({marks})",
            (self.job_id, partition_id, *wanted),
        )
        return {key for (key,) in rows}

    def record(self, message: BatchMessage) -> None:
        """Write one batch's rows and, when it closes its partition, the partition's state."""
        with _transaction(self.db):
            self.db.executemany(
                "INSERT OR REPLACE INTO items (job_id, partition_id, key, status, path,"
                " frame_index, meta, result, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                message.rows,
            )
            if message.end is not None:
                self._close_partition(message)

    def _close_partition(self, message: BatchMessage) -> None:
        status, error = message.end  # type: ignore[misc]
        (failed,) = self.db.execute(
            "SELECT COUNT(*) FROM items WHERE job_id = ? AND partition_id = ? AND status = 'failed'",
            (self.job_id, message.partition_id),
        ).fetchone()
        (items,) = self.db.execute(
            "SELECT COUNT(*) FROM items WHERE job_id = ? AND partition_id = ?",
            (self.job_id, message.partition_id),
        ).fetchone()
        self.db.execute(
            "INSERT OR REPLACE INTO partitions (job_id, id, status, items, failed, error)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (self.job_id, message.partition_id, status, items, failed, error),
        )

    def counts(self) -> JobCounts:
        rows = self.db.execute(
            "SELECT status, COUNT(*) FROM items WHERE job_id = ? GROUP BY status", (self.job_id,)
        )
        by_status = dict(rows.fetchall())
        (failed_partitions,) = self.db.execute(
            "SELECT COUNT(*) FROM partitions WHERE job_id = ? AND status = 'failed'",
            (self.job_id,),
        ).fetchone()
        return JobCounts(by_status.get("done", 0), by_status.get("failed", 0), failed_partitions)


class _transaction:
    """BEGIN IMMEDIATE … COMMIT, rolled back on error (the connection is in autocommit mode)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        self.db.execute("COMMIT" if kind is None else "ROLLBACK")
