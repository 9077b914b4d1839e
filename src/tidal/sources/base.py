"""The Source plug-in point: list partitions cheaply, read one partition inside a worker.

A :class:`Source` is built in the main process (from config) and pickled to workers. Its
``partitions()`` must be cheap (no decoding): it runs in the main process on every start and
resume. ``read(partition)`` runs inside a worker and yields :class:`Item` objects; decoded
frames never cross a process boundary.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from tidal.types import ItemKey, PartitionId


@dataclass(slots=True)
class Item:
    """One unit of input.

    ``key`` is stable across runs (path + file fingerprint + index), ``data`` is the decoded
    payload (an ``HxWx3`` uint8 RGB array for frames and images), ``meta`` holds what is
    exported beside the result: ``path``, ``frame_index``, ``time`` (seconds), ``member``...
    """

    key: ItemKey
    data: Any
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Partition:
    """A piece of a source read by one worker in one go.

    ``size`` is the number of items it will yield when known (for progress and ETA), else None.
    ``payload`` is whatever the source needs to read it (small and picklable).
    """

    id: PartitionId
    size: int | None
    payload: Any = None


@dataclass(slots=True)
class ItemFailure:
    """An item a source could not decode; it is recorded as failed and the partition goes on."""

    key: ItemKey
    error: str
    meta: dict[str, Any] = field(default_factory=dict)


class Source:
    """Base class of sources. Subclasses implement both methods."""

    def partitions(self) -> list[Partition]:
        """List the partitions, cheaply (no decoding). Raise SourceError when nothing matches."""
        raise NotImplementedError

    def read(self, partition: Partition) -> Iterator[Item | ItemFailure]:
        """Yield the partition's items in a deterministic order, inside a worker.

        Yield :class:`ItemFailure` for an item that cannot be decoded and go on; raise
        :class:`~tidal.errors.DecodeError` when the rest of the partition cannot be read.
        """
        raise NotImplementedError
