"""Processors used by the engine suite; importable by spawned workers (configs list this module)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from tidal.processors.base import Processor
from tidal.sources.base import Item, Partition
from tidal.sources.range import Range


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


class Marks(Processor):
    """Leaves files in ``folder``: ``setup`` when set up, then on exit ``thread`` (from a non-daemon
    thread that outlives teardown) and ``atexit`` (from an atexit handler, written after the thread)."""

    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)

    def setup(self) -> None:
        import atexit
        import threading

        (self.folder / f"setup-{os.getpid()}").write_text("")
        atexit.register(self._at_exit)
        self.thread = threading.Thread(target=self._late, daemon=False)

    def process(self, batch: list[Item]) -> list[Any]:
        return [{"pid": os.getpid()} for _ in batch]

    def teardown(self) -> None:
        self.thread.start()

    def _late(self) -> None:
        time.sleep(0.3)
        (self.folder / f"thread-{os.getpid()}").write_text("")

    def _at_exit(self) -> None:
        thread_done = (self.folder / f"thread-{os.getpid()}").exists()
        (self.folder / f"atexit-{os.getpid()}").write_text("after the thread" if thread_done else "before")


class ListedAfterSetup(Range):
    """A Range whose listing waits (up to ``wait`` s) for a worker's ``setup-*`` file in ``folder``
    and counts the partitions it lists in ``listed`` (``waited`` records whether it saw one)."""

    def __init__(self, n: int, folder: str, wait: float = 30.0) -> None:
        super().__init__(n, per_partition=5)
        self.folder = folder
        self.wait = wait

    def partitions(self) -> list[Partition]:
        deadline = time.monotonic() + self.wait
        while not any(Path(self.folder).glob("setup-*")) and time.monotonic() < deadline:
            time.sleep(0.02)
        seen = any(Path(self.folder).glob("setup-*"))
        (Path(self.folder) / "waited").write_text("saw a worker set up" if seen else "timed out")
        return super().partitions()
