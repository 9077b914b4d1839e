"""A processor that does nothing: measures tidal's own per-item cost (``bench/overhead.py``)."""

from __future__ import annotations

from typing import Any

from tidal.processors.base import Processor
from tidal.sources.base import Item


class NoOp(Processor):
    """Returns an empty result per item."""

    def __init__(self, batch_size: int = 256) -> None:
        self.batch_size = batch_size

    def process(self, batch: list[Item]) -> list[Any]:
        return [{} for _ in batch]
