"""Processors used by the engine suite; importable by spawned workers (configs list this module)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from tidal.processors.base import Processor
from tidal.sources.base import Item


class Square(Processor):
    """{"square": i*i}; fails on ``fail_on`` items unless ``heal_file`` exists; may crash."""

    def __init__(self, fail_on: list[int] | None = None, heal_file: str | None = None,
                 crash_on: int | None = None, delay: float = 0.0, batch_size: int = 8) -> None:
        self.fail_on = set(fail_on or [])
        self.heal_file = heal_file
        self.crash_on = crash_on
        self.delay = delay
        self.batch_size = batch_size

    def process(self, batch: list[Item]) -> list[Any]:
        healed = self.heal_file is not None and Path(self.heal_file).exists()
        results = []
        for item in batch:
            if item.data == self.crash_on and not healed:
                os.kill(os.getpid(), signal.SIGKILL)
            if item.data in self.fail_on and not healed:
                raise ValueError(f"refusing item {item.data}")
            results.append({"square": item.data * item.data, "pid": os.getpid()})
        time.sleep(self.delay)
        return results


class BrokenSetup(Processor):
    def setup(self) -> None:
        raise RuntimeError("model file missing")

    def process(self, batch: list[Item]) -> list[Any]:
        return [{} for _ in batch]
