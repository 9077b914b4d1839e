"""Running one partition inside a worker: read it, batch it, hand batches to the processor host,
turn the outcomes into rows.

Shared by every engine so they behave the same. Results and metadata are JSON-encoded here, in
the worker, so the single writer in the main process only inserts rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from tidal.engines.base import BatchMessage, Row, Task, Work
from tidal.errors import DecodeError
from tidal.processors.host import Outcome, ProcessorHost, describe_error, encode_json, is_record
from tidal.sources.base import Item, ItemFailure
from tidal.status import ItemStatus, PartitionStatus
from tidal.types import ItemKey, PartitionId


class PartitionReader:
    """Turns tasks into batch messages with one started processor host (one per worker)."""

    def __init__(self, work: Work, host: ProcessorHost) -> None:
        self.job_id = work.job_id
        self.source = work.source
        self.host = host
        self.batch_size = host.batch_size

    def run(self, task: Task) -> Iterator[BatchMessage]:
        """Yield the partition's batches; the last message carries the partition's end."""
        partition_id = task.partition.id
        batch: list[Item] = []
        failures: list[Row] = []
        end: tuple[str, str | None] = (PartitionStatus.DONE.value, None)
        try:
            for item in self.source.read(task.partition):
                if item.key in task.skip:
                    continue
                if isinstance(item, ItemFailure):
                    failures.append(self._row(partition_id, item.key, item.meta, None, item.error))
                    continue
                batch.append(item)
                if len(batch) >= self.batch_size:
                    yield self._message(partition_id, failures + self.process(partition_id, batch))
                    batch, failures = [], []
        except DecodeError as error:
            end = (PartitionStatus.FAILED.value, str(error))
        except Exception as error:  # a source bug must fail this partition, not the job
            end = (PartitionStatus.FAILED.value, f"reading {partition_id} failed: {describe_error(error)}")
        yield self._message(partition_id, failures + self.process(partition_id, batch), end)

    def process(self, partition_id: PartitionId, items: list[Item]) -> list[Row]:
        """One row per item: the host isolates failures, this encodes the results."""
        outcomes = self.host.process(items)
        return [self._outcome_row(partition_id, item, outcome) for item, outcome in zip(items, outcomes, strict=True)]

    def _outcome_row(self, partition_id: PartitionId, item: Item, outcome: Outcome) -> Row:
        if outcome.error is not None:
            return self._row(partition_id, item.key, item.meta, None, outcome.error)
        try:
            encoded = encode_json(_record(outcome.result))
        except (TypeError, ValueError) as error:
            return self._row(partition_id, item.key, item.meta, None, f"result is not JSON-serialisable: {error}")
        return self._row(partition_id, item.key, item.meta, encoded, None)

    def _row(self, partition_id: PartitionId, key: ItemKey, meta: dict[str, Any], result: str | None,
             error: str | None) -> Row:
        status = ItemStatus.DONE if error is None else ItemStatus.FAILED
        return Row(self.job_id, partition_id, key, status.value, meta.get("path"), meta.get("frame_index"),
                   encode_json(meta), result, error)

    @staticmethod
    def _message(partition_id: PartitionId, rows: list[Row], end: tuple[str, str | None] | None = None
                 ) -> BatchMessage:
        failed = sum(1 for row in rows if row.error is not None)
        return BatchMessage(partition_id, rows, end, failed)


def _record(result: Any) -> Any:
    """A row's result is a JSON object: a dict, a dataclass or pydantic model (their fields), or
    any other value as ``{"value": v}``."""
    return result if isinstance(result, dict) or is_record(result) else {"value": result}
