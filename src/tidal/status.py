"""Every status tidal stores, as ``str`` enums: they read and write cleanly in SQL and JSON.

| enum | of | values |
| --- | --- | --- |
| :class:`ItemStatus` | one item in a job's ledger | done, failed |
| :class:`PartitionStatus` | a partition closed in the ledger | done, failed |
| :class:`JobStatus` | a ``tidal map`` job | running, completed, failed, interrupted |
| :class:`RunStatus` | a tracked run (script, job, service) | running, completed, failed, interrupted, lost |
"""

from __future__ import annotations

from enum import Enum


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


class RunStatus(str, Enum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    LOST = "lost"  # its process died without saying so
