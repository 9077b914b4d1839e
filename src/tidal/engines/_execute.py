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
from tidal.sources.base import Item, ItemFailure, Source


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

    def __init__(self, source: Source, processor: Processor) -> None:
        self.source = source
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
                    failures.append(_row(item.key, item.meta, None, item.error))
                    continue
                batch.append(item)
                if len(batch) >= self.batch_size:
                    yield BatchMessage(partition_id, failures + self.process(batch))
                    batch, failures = [], []
        except DecodeError as error:
            end = ("failed", str(error))
        except Exception as error:  # a source bug must fail this partition, not the job
            end = ("failed", f"reading {partition_id} failed: {_describe(error)}")
        yield BatchMessage(partition_id, failures + self.process(batch), end)

    def process(self, items: list[Item]) -> list[Row]:
        """Process a batch; when it raises, retry item by item so one bad item fails alone."""
        if not items:
            return []
        try:
            results = self.processor.process(items)
            if len(results) != len(items):
                raise ValueError(f"process() returned {len(results)} results for {len(items)} items")
            return [_result_row(item, result) for item, result in zip(items, results, strict=True)]
        except Exception as error:
            if len(items) == 1:
                return [_row(items[0].key, items[0].meta, None, _describe(error, True))]
            return [row for item in items for row in self.process([item])]


def _result_row(item: Item, result: Any) -> Row:
    try:
        return _row(item.key, item.meta, to_json(result), None)
    except (TypeError, ValueError) as error:
        return _row(item.key, item.meta, None, f"result is not JSON-serialisable: {error}")


def _row(key: str, meta: dict[str, Any], result: str | None, error: str | None) -> Row:
    status = "failed" if error is not None else "done"
    frame_index = meta.get("frame_index")
    return (key, status, meta.get("path"), frame_index, to_json(meta), result, error)


def to_json(value: Any) -> str:
    """JSON with NumPy arrays and scalars as lists and numbers; a bare value becomes ``{"value": v}``."""
    if not isinstance(value, dict):
        value = {"value": value}
    return json.dumps(value, default=_plain, separators=(",", ":"), allow_nan=True)


def _plain(value: Any) -> Any:
    if hasattr(value, "tolist"):  # NumPy arrays and scalars, without importing NumPy here
        return value.tolist()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def _describe(error: BaseException, with_origin: bool = False) -> str:
    text = f"{type(error).__name__}: {error}"
    if with_origin:
        frames = traceback.extract_tb(error.__traceback__)
        if frames:
            last = frames[-1]
            text += f" (at {last.filename}:{last.lineno} in {last.name})"
    return text
