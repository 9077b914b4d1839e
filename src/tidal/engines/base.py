"""The Engine plug-in point: run a job's partitions somewhere and stream back their batches.

An engine receives a :class:`Work` (the source and the processor's spec, both picklable) and an
iterator of :class:`Task` (a partition and the keys to skip in it). It yields
:class:`BatchMessage` objects; the caller (the job runner, in the main process) is the only
writer and commits each message in one transaction. An engine pulls tasks lazily, so it bounds
the work in flight, and it sets the processor up once per worker.

The caller may call :meth:`Engine.start` first, so that workers start and set the processor up
while it lists and plans; it then calls :meth:`Engine.close` once done, run or not.

Implementations: ``inline`` (the calling process, for debugging and tests), ``local`` (a
process pool) and ``ray`` (a Ray cluster). All pass ``tests/engines/suite.py``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

from tidal.processors.host import ProcessorSpec
from tidal.sources.base import Partition, Source
from tidal.types import ItemKey, JobId, PartitionId


class Row(NamedTuple):
    """One item's outcome, ready to insert (a tuple, in the ``items`` table's column order).

    Workers build whole rows, results and meta already JSON, so the single writer only inserts
    them (``executemany``).
    """

    job_id: JobId
    partition_id: PartitionId
    key: ItemKey
    status: str  # an ItemStatus value: "done" or "failed"
    path: str | None
    frame_index: int | None
    meta: str | None  # JSON
    result: str | None  # JSON; None when the item failed
    error: str | None  # why it failed; None when done


@dataclass(frozen=True)
class Work:
    """What every worker needs: the source to read and the spec to build the processor from."""

    job_id: JobId
    source: Source
    processor: ProcessorSpec


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

    def __reduce__(self) -> tuple[Any, ...]:
        # Rows travel as plain tuples: pickle handles a NamedTuple through Python code per row
        # (about 1.3 µs a row between the processes, a tenth of a no-op job's whole cost).
        return (_batch_message, (self.partition_id, [tuple(row) for row in self.rows], self.end, self.failed))


def _batch_message(partition_id: PartitionId, rows: list[tuple[Any, ...]], end: tuple[str, str | None] | None,
                   failed: int) -> BatchMessage:
    return BatchMessage(partition_id, [tuple.__new__(Row, row) for row in rows], end, failed)


class Engine:
    """Base class of engines."""

    workers: int = 1

    def run(self, work: Work, tasks: Iterable[Task]) -> Iterator[BatchMessage]:
        """Run every task, yielding batches as they finish; stop cleanly when closed early."""
        raise NotImplementedError

    def start(self, work: Work) -> None:
        """Optional: start the workers for ``work`` now; the next :meth:`run` of the same work
        uses them. The default does nothing (workers start in ``run``)."""

    def close(self) -> None:
        """Stop workers that :meth:`start` started and no :meth:`run` took (the caller failed
        before running); a no-op otherwise."""

    def describe(self) -> dict[str, Any]:
        """Settings worth recording in the run (engine name, workers)."""
        return {"engine": type(self).__name__, "workers": self.workers}
