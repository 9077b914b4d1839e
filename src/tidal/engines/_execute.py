"""Running one partition inside a worker: read, batch, process, isolate failures.

Shared by every engine so they behave the same. Results and metadata are JSON-encoded here, in
the worker, so the single writer in the main process only inserts rows.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Iterator
from typing import Any

from tidal.config.job import build_processor
from tidal.engines.base import BatchMessage, Row, Task, Work
from tidal.errors import DecodeError, ProcessorError, TidalError
from tidal.processors.base import Processor
from tidal.sources.base import Item, ItemFailure


def start_processor(work: Work) -> Processor:
    """Build the processor and run its ``setup()``; a failure names the processor."""
    try:
        processor = build_processor(work.processor, work.allowed)
        processor.setup()
    except TidalError:
        raise
    except Exception as error:
        raise ProcessorError(
            f"{work.processor.target}: setting up the processor failed: {_describe(error, True)}"
        ) from error
    return processor


class PartitionRunner:
    """Turns tasks into batch messages with one set-up processor (one per worker)."""

    def __init__(self, work: Work, processor: Processor) -> None:
        self.job_id = work.job_id
        self.source = work.source
        self.processor = processor
        self.batch_size = max(1, int(getattr(processor, "batch_size", 16)))

    def run(self, task: Task) -> Iterator[BatchMessage]:
        """Yield the partition's batches; the last message carries the partition's end."""
        partition_id = task.partition.id
        batch: list[Item] = []
        failures: list[Row] = []
        end: tuple[str, str | None] = ("done", None)
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
            end = ("failed", str(error))
        except Exception as error:  # a source bug must fail this partition, not the job
            end = ("failed", f"reading {partition_id} failed: {_describe(error)}")
        yield self._message(partition_id, failures + self.process(partition_id, batch), end)

    def process(self, partition_id: str, items: list[Item]) -> list[Row]:
        """Process a batch; when it raises, retry item by item so one bad item fails alone."""
        if not items:
            return []
        try:
            results = self.processor.process(items)
            if len(results) != len(items):
                raise ValueError(f"process() returned {len(results)} results for {len(items)} items")
        except Exception as error:
            if len(items) == 1:
                return [self._row(partition_id, items[0].key, items[0].meta, None, _describe(error, True))]
            return [row for item in items for row in self.process(partition_id, [item])]
        return [self._result_row(partition_id, item, result)
                for item, result in zip(items, results, strict=True)]

    def _result_row(self, partition_id: str, item: Item, result: Any) -> Row:
        try:
            encoded = to_json(result)
        except (TypeError, ValueError) as error:
            return self._row(partition_id, item.key, item.meta, None,
                             f"result is not JSON-serialisable: {error}")
        return self._row(partition_id, item.key, item.meta, encoded, None)

    def _row(self, partition_id: str, key: str, meta: dict[str, Any], result: str | None,
             error: str | None) -> Row:
        status = "failed" if error is not None else "done"
        return (self.job_id, partition_id, key, status, meta.get("path"), meta.get("frame_index"),
                _ENCODER.encode(meta), result, error)

    @staticmethod
    def _message(partition_id: str, rows: list[Row], end: tuple[str, str | None] | None = None
                 ) -> BatchMessage:
        failed = sum(1 for row in rows if row[8] is not None)
        return BatchMessage(partition_id, rows, end, failed)


def _plain(value: Any) -> Any:
    if hasattr(value, "tolist"):  # NumPy arrays and scalars, without importing NumPy here
        return value.tolist()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


_ENCODER = json.JSONEncoder(default=_plain, separators=(",", ":"), allow_nan=True)


def to_json(value: Any) -> str:
    """JSON with NumPy arrays and scalars as lists and numbers; a bare value becomes ``{"value": v}``."""
    return _ENCODER.encode(value if isinstance(value, dict) else {"value": value})


def _describe(error: BaseException, with_origin: bool = False) -> str:
    text = f"{type(error).__name__}: {error}"
    if with_origin:
        frames = traceback.extract_tb(error.__traceback__)
        if frames:
            last = frames[-1]
            text += f" (at {last.filename}:{last.lineno} in {last.name})"
    return text
