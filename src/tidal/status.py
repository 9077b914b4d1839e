"""Every status tidal stores, as ``str`` enums: they read and write cleanly in SQL and JSON.

| enum | of | values |
| --- | --- | --- |
| :class:`ItemStatus` | one item in a job's ledger | done, failed |
| :class:`PartitionStatus` | a partition closed in the ledger | done, failed |
| :class:`JobStatus` | a ``tidal map`` job | running, completed, failed, interrupted |
| :class:`RunStatus` | a tracked run (script, job, service) | running, completed, failed, interrupted, lost, queued |
| :class:`QueueStatus` | a run submitted to Ray (``tidal submit``) | waiting, submitted, running, done, failed, cancelling, cancelled, lost |
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
    QUEUED = "queued"  # submitted (tidal submit): waiting in the queue or on Ray, not started yet


class QueueStatus(str, Enum):
    """Where a submitted run is between the queue and Ray (its run has the finer status)."""

    WAITING = "waiting"  # in the queue: the cluster lacks the resources it asks for (``reason`` says which)
    SUBMITTED = "submitted"  # handed to Ray Jobs, not started there yet
    RUNNING = "running"  # Ray runs it
    DONE = "done"  # Ray's job succeeded
    FAILED = "failed"  # Ray's job failed, or Ray refused it (``reason`` says why)
    CANCELLING = "cancelling"  # cancelled while on Ray: the dispatcher stops Ray's job
    CANCELLED = "cancelled"
    LOST = "lost"  # Ray no longer knows its job (the head restarted, the job was deleted)

    @classmethod
    def on_ray(cls) -> tuple[QueueStatus, ...]:
        """The statuses of entries whose Ray job must be watched."""
        return (cls.SUBMITTED, cls.RUNNING, cls.CANCELLING)

    @classmethod
    def ended(cls) -> tuple[QueueStatus, ...]:
        return (cls.DONE, cls.FAILED, cls.CANCELLED, cls.LOST)
