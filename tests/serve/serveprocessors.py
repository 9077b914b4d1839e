"""Processors the serve tests put behind HTTP; importable by worker processes (configs list
this module under ``imports``, and the front passes its ``sys.path`` to its workers)."""

from __future__ import annotations

import datetime
import os
import time
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from tidal.errors import RequestError
from tidal.processors.base import Processor
from tidal.sources.base import Item


class Echo(Processor):
    """``{"value": the item, "pid", "batch": items in its batch}``; ``setup_seconds`` sleeps in
    setup, ``process_seconds`` per batch (``slow_seconds`` more when the item is "slow"); the
    item ``crash_on`` kills the worker, ``fail_on`` raises, ``hang_on`` never returns (an hour)."""

    def __init__(self, setup_seconds: float = 0.0, process_seconds: float = 0.0, batch_size: int = 8,
                 crash_on: str = "crash", fail_on: str = "fail", slow_seconds: float = 0.0,
                 hang_on: str = "hang") -> None:
        self.setup_seconds = setup_seconds
        self.process_seconds = process_seconds
        self.batch_size = batch_size
        self.crash_on = crash_on
        self.fail_on = fail_on
        self.slow_seconds = slow_seconds
        self.hang_on = hang_on

    def setup(self) -> None:
        time.sleep(self.setup_seconds)

    def process(self, batch: list[Item]) -> list[Any]:
        for item in batch:
            if item.data == self.crash_on:
                os._exit(3)
            if item.data == self.fail_on:
                raise RuntimeError(f"refusing {item.data!r}")
            if item.data == self.hang_on:  # an endless loop, a deadlocked GPU call
                time.sleep(3600)
            if item.data == "slow":
                time.sleep(self.slow_seconds)
        time.sleep(self.process_seconds)
        return [{"value": item.data, "pid": os.getpid(), "batch": len(batch)} for item in batch]


class Sum(BaseModel):
    a: int
    b: int = 0


class Adder(Processor):
    """JSON requests validated by ``input_model``."""

    input_model = Sum

    def process(self, batch: list[Item]) -> list[Any]:
        return [{"sum": item.data.a + item.data.b} for item in batch]


class Sentence(BaseModel):
    text: str


class WordLengths(Processor):
    """``preprocess`` splits a sentence into words (its hint is the input model),
    ``postprocess`` sums their lengths."""

    batch_size = 4

    def preprocess(self, request: Sentence) -> list[str]:
        if not request.text.strip():
            raise RequestError(422, "text is blank; send at least one word")
        return request.text.split()

    def process(self, batch: list[Item]) -> list[Any]:
        return [len(item.data) for item in batch]

    def postprocess(self, results: list[int]) -> dict[str, Any]:
        return {"lengths": results, "total": sum(results)}


class FrameShape(Processor):
    """The shape and mean of each frame or image, and the size of its batch (media only: JSON
    values are refused by the front)."""

    batch_size = 64
    json_input = False

    def process(self, batch: list[Item]) -> list[Any]:
        return [{"shape": list(item.data.shape), "mean": float(item.data.mean()), "batch": len(batch)}
                for item in batch]


class ClipLength(Processor):
    """Whole videos: the number of frames and the rate of each clip."""

    batch_size = 1
    video_input = "clip"

    def process(self, batch: list[Item]) -> list[Any]:
        return [{"frames": len(item.data), "fps": item.data.fps, "shape": list(item.data.frames.shape)}
                for item in batch]


class BrokenSetup(Processor):
    def setup(self) -> None:
        raise RuntimeError("model weights missing")

    def process(self, batch: list[Item]) -> list[Any]:
        return [None for _ in batch]


class SetupFailsWhile(Processor):
    """setup() fails while the file ``flag`` exists (weights not there yet, a GPU still busy)."""

    def __init__(self, flag: str) -> None:
        self.flag = flag

    def setup(self) -> None:
        if os.path.exists(self.flag):
            raise RuntimeError(f"not ready: {self.flag} exists")

    def process(self, batch: list[Item]) -> list[Any]:
        return [{"value": item.data, "pid": os.getpid()} for item in batch]


@dataclass(frozen=True)
class Point:
    x: int
    y: float


@dataclass(frozen=True)
class Measurement:
    number: int
    square: int
    label: str
    day: datetime.date
    tags: frozenset[str]
    point: Point


class Measure(Processor):
    """Dataclass results (with a date, a set and a nested dataclass): they must read the same in
    ``tidal map``'s rows and in ``tidal serve``'s responses."""

    batch_size = 4

    def process(self, batch: list[Item]) -> list[Any]:
        return [Measurement(number=item.data, square=item.data ** 2, label=f"n{item.data}",
                            day=datetime.date(2024, 5, 1 + item.data), tags=frozenset({"b", "a"}),
                            point=Point(item.data, item.data / 2)) for item in batch]
