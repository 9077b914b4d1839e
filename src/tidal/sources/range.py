"""Synthetic items ``0..n-1``: cheap input for engine tests and per-item overhead benchmarks."""

from __future__ import annotations

from collections.abc import Iterator

from tidal.errors import ConfigError
from tidal.sources.base import Item, ItemFailure, Partition, Source


class Range(Source):
    """The integers ``0..n-1`` as items (``data`` is the integer), ``per_partition`` a partition.

    Example::

        Range(n=10_000, per_partition=500)
    """

    def __init__(self, n: int, per_partition: int = 1000) -> None:
        if n < 0:
            raise ConfigError(f"n must be 0 or more, not {n}")
        if per_partition < 1:
            raise ConfigError(f"per_partition must be at least 1, not {per_partition}")
        self.n = n
        self.per_partition = per_partition

    def partitions(self) -> list[Partition]:
        """Consecutive ranges of ``per_partition`` integers (the last one may be shorter)."""
        return [
            Partition(
                id=f"range:{start}-{min(start + self.per_partition, self.n) - 1}",
                size=min(self.per_partition, self.n - start),
                payload=(start, min(start + self.per_partition, self.n)),
            )
            for start in range(0, self.n, self.per_partition)
        ]

    def read(self, partition: Partition) -> Iterator[Item | ItemFailure]:
        """Yield ``Item("range:<i>", i, {"index": i})`` for each integer of the partition."""
        start, stop = partition.payload
        for index in range(start, stop):
            yield Item(f"range:{index}", index, {"index": index})
