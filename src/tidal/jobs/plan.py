"""Planning a (re)run: which partitions to read and which keys in them to skip.

On a plain resume, finished partitions are skipped without being decoded and unfinished ones
skip every item already settled (done or failed). With ``retry_failed``, partitions that failed
or hold failed items are read again, skipping only the items that are done. With ``recompute``
(a pipeline's ``--from``/``--no-cache``) every partition is read and every item processed again.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from tidal.engines.base import Task
from tidal.jobs.ledger import ItemStatus, Ledger, PartitionStatus
from tidal.sources.base import Partition
from tidal.types import PartitionId


@dataclass
class Plan:
    """The tasks to run, lazily, and what the progress bar needs to know up front."""

    ledger: Ledger
    partitions: list[Partition]
    retry_failed: bool
    total: int | None = None
    expected: dict[PartitionId, int] = field(default_factory=dict)
    recompute: bool = False

    def __post_init__(self) -> None:
        sizes = [p.size for p in self.partitions]
        self.total = None if any(s is None for s in sizes) else sum(s or 0 for s in sizes)
        self.states = self.ledger.partition_states()

    def tasks(self) -> Iterator[Task]:
        """One task per partition that still has work; queries the ledger as it goes."""
        for partition in self.partitions:
            skip = self._skip(partition)
            if skip is None:
                continue
            if partition.size is not None:
                self.expected[partition.id] = partition.size - len(skip)
            yield Task(partition, frozenset(skip))

    def _skip(self, partition: Partition) -> set[str] | None:
        """Keys to skip in ``partition``, or None when the partition needs no reading."""
        if self.recompute:
            return set()
        state = self.states.get(partition.id)
        if state is not None:
            status, failed_items = state
            has_failures = status == PartitionStatus.FAILED.value or failed_items > 0
            if not (self.retry_failed and has_failures):
                return None
        settled = [ItemStatus.DONE] if self.retry_failed else [ItemStatus.DONE, ItemStatus.FAILED]
        return self.ledger.keys(partition.id, settled)
