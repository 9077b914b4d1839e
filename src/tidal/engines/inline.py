"""The inline engine: every partition in the calling process, one after the other.

For debugging (a breakpoint in ``process`` just works) and for tests; the same execution code
as the other engines.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from tidal.engines._execute import PartitionRunner, start_processor
from tidal.engines.base import BatchMessage, Engine, Task, Work


class InlineEngine(Engine):
    """Runs the job in the calling process."""

    def __init__(self) -> None:
        self.workers = 1

    def run(self, work: Work, tasks: Iterable[Task]) -> Iterator[BatchMessage]:
        processor = start_processor(work)
        try:
            runner = PartitionRunner(work, processor)
            for task in tasks:
                yield from runner.run(task)
        finally:
            processor.teardown()
