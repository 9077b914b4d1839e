"""The inline engine: every partition in the calling process, one after the other.

For debugging (a breakpoint in ``process`` just works) and for tests; the same execution code
as the other engines.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from tidal.engines.base import BatchMessage, Engine, Task, Work
from tidal.engines.partition import PartitionReader
from tidal.processors.host import ProcessorHost


class InlineEngine(Engine):
    """Runs the job in the calling process."""

    def __init__(self) -> None:
        self.workers = 1

    def run(self, work: Work, tasks: Iterable[Task]) -> Iterator[BatchMessage]:
        with ProcessorHost(work.processor) as host:
            reader = PartitionReader(work, host)
            for task in tasks:
                yield from reader.run(task)
