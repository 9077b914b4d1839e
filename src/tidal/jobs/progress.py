"""Showing a job's progress: a rich bar for terminals, periodic log lines for ``--quiet``."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any


@dataclass
class Snapshot:
    """Counts at one moment; ``completed`` includes items settled by earlier runs."""

    total: int | None
    completed: int
    done: int
    failed: int
    resumed: int
    rate: float  # items per second in this run

    @property
    def eta_seconds(self) -> float | None:
        if self.total is None or self.rate <= 0:
            return None
        return max(0.0, (self.total - self.completed) / self.rate)


class ProgressReporter:
    """Base: receives snapshots; the runner calls ``start``, ``update`` often, ``stop`` once."""

    def start(self, job_id: str, name: str, snapshot: Snapshot) -> None:
        pass

    def update(self, snapshot: Snapshot) -> None:
        pass

    def stop(self, snapshot: Snapshot) -> None:
        pass


class BarProgress(ProgressReporter):
    """A rich progress bar: done/total, items/s, ETA, failed and resumed counts."""

    def start(self, job_id: str, name: str, snapshot: Snapshot) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.bar = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:>8.1f} items/s"), TimeElapsedColumn(),
            TextColumn("ETA"), TimeRemainingColumn(),
            TextColumn("[red]{task.fields[failed]} failed[/] · {task.fields[resumed]} resumed"),
            transient=False,
        )
        self.bar.start()
        self.task = self.bar.add_task(f"{name} {job_id}", total=snapshot.total,
                                      completed=snapshot.completed, **_fields(snapshot))

    def update(self, snapshot: Snapshot) -> None:
        self.bar.update(self.task, completed=snapshot.completed, total=snapshot.total,
                        **_fields(snapshot))

    def stop(self, snapshot: Snapshot) -> None:
        self.update(snapshot)
        self.bar.stop()


def _fields(snapshot: Snapshot) -> dict[str, Any]:
    return {"rate": snapshot.rate, "failed": snapshot.failed, "resumed": snapshot.resumed}


class LogProgress(ProgressReporter):
    """One line on stderr every ``every`` seconds, for logs and CI (``--quiet``)."""

    def __init__(self, every: float = 10.0) -> None:
        self.every = every
        self.last = 0.0
        self.job = ""

    def start(self, job_id: str, name: str, snapshot: Snapshot) -> None:
        self.job = f"{name} {job_id}"
        self.last = time.monotonic()
        self._write(snapshot, "started")

    def update(self, snapshot: Snapshot) -> None:
        if time.monotonic() - self.last >= self.every:
            self.last = time.monotonic()
            self._write(snapshot, "running")

    def stop(self, snapshot: Snapshot) -> None:
        self._write(snapshot, "stopped")

    def _write(self, s: Snapshot, state: str) -> None:
        total = "?" if s.total is None else str(s.total)
        eta = "?" if s.eta_seconds is None else f"{s.eta_seconds:.0f}s"
        print(f"tidal: {self.job} {state}: {s.completed}/{total} items, {s.rate:.1f} items/s,"
              f" ETA {eta}, {s.failed} failed, {s.resumed} resumed", file=sys.stderr, flush=True)
