"""The Ledger plug-in point: which items of a job are done or failed, committed with their results.

Each message from an engine (one batch of one partition, possibly closing the partition) is
written in one transaction, so results and the ledger never disagree: after any crash an item
is either done with its result or not there at all. Writing a message is an upsert keyed by
(job, partition, item key), so writing the same message twice (a retried request) changes
nothing: the ledger stays exactly-once whatever the transport.

A ledger is obtained from the store that owns the job (``store.ledger(job_id)``).
Implementations, all passing ``tests/jobs/ledger_suite.py``:

- :class:`~tidal.jobs.sqlite_ledger.SQLiteLedger`: plain sqlite3 on the embedded file (the fast path);
- :class:`~tidal.jobs.sql_ledger.SQLLedger`: SQLAlchemy over the same tables (PostgreSQL, or SQLite);
- :class:`~tidal.jobs.http_ledger.HTTPLedger`: a tidal server's REST API, messages sent in groups.

The statuses live in :mod:`tidal.status` (imported here for the ledgers' callers).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from tidal.engines.base import BatchMessage
from tidal.status import ItemStatus, JobStatus, PartitionStatus
from tidal.types import ItemKey, JobId, PartitionId


class PartitionState(NamedTuple):
    """A finished partition: its status and how many of its items failed."""

    status: PartitionStatus
    failed: int


@dataclass
class JobCounts:
    done: int = 0
    failed_items: int = 0
    failed_partitions: int = 0


class Ledger:
    """One job's ledger and results. Every method raises NotImplementedError here.

    Reads reflect every message recorded before them (a backend that groups writes sends them
    first).
    """

    job_id: JobId

    def register(self, name: str, config: dict[str, Any], config_file: str | None) -> None:
        """Create the job's row on its first run; on a resume mark it running again."""
        raise NotImplementedError

    def set_status(self, status: JobStatus, total_items: int | None = None) -> None:
        """Record the job's status (and, when known, how many items its source holds)."""
        raise NotImplementedError

    def partition_states(self) -> dict[PartitionId, PartitionState]:
        """Each finished partition's state; a partition not listed has not been closed yet."""
        raise NotImplementedError

    def keys(self, partition_id: PartitionId, statuses: Iterable[ItemStatus]) -> set[ItemKey]:
        """Keys of one partition's items whose status is one of ``statuses``."""
        raise NotImplementedError

    def record(self, message: BatchMessage) -> None:
        """Write one batch's rows and, when it closes its partition, the partition's state,
        atomically: after a crash either all of it is there or none."""
        raise NotImplementedError

    def record_many(self, messages: list[BatchMessage]) -> None:
        """Several messages in order (a backend may write them in one transaction)."""
        for message in messages:
            self.record(message)

    def counts(self) -> JobCounts:
        """Done items, failed items and failed partitions, counted from the ledger itself."""
        raise NotImplementedError

    def flush(self) -> None:
        """Write what a grouping backend still holds (a no-op where every record commits)."""

    def close(self) -> None:
        """Flush and release connections."""
        self.flush()
