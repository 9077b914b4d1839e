"""The Engine plug-in point: run a job's partitions somewhere and stream back their batches.

An engine receives a :class:`Work` (the source and the processor's spec, both picklable) and an
iterator of :class:`Task` (a partition and the keys to skip in it). It yields
:class:`BatchMessage` objects; the caller (the job runner, in the main process) is the only
writer and commits each message in one transaction. An engine pulls tasks lazily, so it bounds
the work in flight, and it sets the processor up once per worker.

Implementations: ``inline`` (the calling process, for debugging and tests), ``local`` (a
process pool) and ``ray`` (a Ray cluster). All pass ``tests/engines/suite.py``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from tidal.config.spec import ObjectSpec
from tidal.sources.base import Partition, Source
from tidal.types import ItemKey, JobId, PartitionId

Row = tuple[JobId, PartitionId, ItemKey, str, str | None, int | None, str | None, str | None, str | None]
"""One item's outcome, ready to insert: job, partition, key, status, path, frame_index, meta JSON,
result JSON, error. Workers build whole rows so the single writer only inserts them."""


@dataclass(frozen=True)
class Work:
    """What every worker needs: the source to read and how to build the processor."""

    job_id: JobId
    source: Source
    processor: ObjectSpec
    allowed: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Task:
    """One partition to run, and the keys already settled in it (skipped without processing)."""

    partition: Partition
    skip: frozenset[ItemKey] = frozenset()


@dataclass
class BatchMessage:
    """Rows of one partition; ``end`` = (status, error) when this message closes the partition."""

    partition_id: PartitionId
    rows: list[Row]
    end: tuple[str, str | None] | None = None
    failed: int = 0  # how many rows are failures


class Engine:
    """Base class of engines."""

    workers: int = 1

    def run(self, work: Work, tasks: Iterable[Task]) -> Iterator[BatchMessage]:
        """Run every task, yielding batches as they finish; stop cleanly when closed early."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """Settings worth recording in the run (engine name, workers)."""
        return {"engine": type(self).__name__, "workers": self.workers}
