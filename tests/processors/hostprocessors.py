"""Processors for the processor-host suite; importable by spawned workers (specs list this module).

Each item's ``data`` is an integer (``tidal.sources.Range``). Processors that must be observed
from another process write what happened to a ``log`` file: one line per ``process()`` call
with the batch's integers, ``teardown`` when torn down.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydantic

from tidal.processors.base import Processor
from tidal.sources.base import Item

WHEN = datetime.datetime(2024, 5, 1, 12, 30, 15)  # naive: pydantic writes UTC as "Z", isoformat as "+00:00"


def _note(log: str | None, line: str) -> None:
    if log is not None:
        with Path(log).open("a") as stream:
            stream.write(line + "\n")


def logged_batches(log: Path) -> list[list[int]]:
    """The integers of every ``process()`` call, in call order."""
    lines = log.read_text().splitlines() if log.exists() else []
    return [[int(n) for n in line.split()] for line in lines if line != "teardown"]


class Picky(Processor):
    """``{"square": i*i}``; a batch holding one of ``refuse`` raises (the whole batch fails)."""

    def __init__(self, refuse: list[int] | None = None, log: str | None = None, batch_size: int = 16) -> None:
        self.refuse = set(refuse or [])
        self.log = log
        self.batch_size = batch_size

    def process(self, batch: list[Item]) -> list[Any]:
        _note(self.log, " ".join(str(item.data) for item in batch))
        bad = [item.data for item in batch if item.data in self.refuse]
        if bad:
            raise ValueError(f"refusing items {bad}")
        return [{"square": item.data * item.data} for item in batch]

    def teardown(self) -> None:
        _note(self.log, "teardown")


class Miscount(Processor):
    """Returns one result too few for batches larger than ``honest_up_to`` items."""

    def __init__(self, honest_up_to: int = 1, log: str | None = None, batch_size: int = 4) -> None:
        self.honest_up_to = honest_up_to
        self.log = log
        self.batch_size = batch_size

    def process(self, batch: list[Item]) -> list[Any]:
        _note(self.log, " ".join(str(item.data) for item in batch))
        results = [{"index": item.data} for item in batch]
        return results if len(batch) <= self.honest_up_to else results[:-1]


def scaled(number: int, factor: int = 2) -> dict[str, int]:
    """A plain function used as a processor."""
    return {"scaled": number * factor}


class BrokenSetup(Processor):
    def setup(self) -> None:
        raise RuntimeError("weights file missing")

    def process(self, batch: list[Item]) -> list[Any]:
        return [{} for _ in batch]


@dataclass
class Reading:
    """A dataclass result, with a datetime and a NumPy array inside."""

    label: str
    at: datetime.datetime
    scores: Any
    count: Any


class ReadingModel(pydantic.BaseModel):
    label: str
    at: datetime.datetime
    scores: list[float]
    count: int


class Typed(Processor):
    """The same reading as a plain dict of JSON values, a dataclass, a pydantic model, or NumPy-typed
    dict; ``bytes`` returns a result holding bytes."""

    def __init__(self, kind: str = "plain", batch_size: int = 4) -> None:
        self.kind = kind
        self.batch_size = batch_size

    def process(self, batch: list[Item]) -> list[Any]:
        return [self.result(item.data) for item in batch]

    def result(self, index: int) -> Any:
        label, scores = f"item {index}", [index / 2, 1.5]
        if self.kind == "dataclass":
            return Reading(label, WHEN, np.array(scores), np.int64(index))
        if self.kind == "pydantic":
            return ReadingModel(label=label, at=WHEN, scores=scores, count=index)
        if self.kind == "numpy":
            return {"label": label, "at": WHEN, "scores": np.array(scores), "count": np.int64(index)}
        if self.kind == "bytes":
            return {"label": label, "thumbnail": b"\x89PNG"}
        return {"label": label, "at": WHEN.isoformat(), "scores": scores, "count": index}
