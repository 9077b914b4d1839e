"""Following a run's output until it ends: ``tidal submit --follow`` and ``tidal logs RUN --follow``.

A run on Ray is followed through Ray's log of its job (everything: pip installing the
requirements, the script's output, a traceback) when Ray's Jobs API answers from here; otherwise,
and for any other run, through the console the run logged to the store. While it waits in the
queue, the reason is shown each time it changes. In direct mode (no server) each look also
reconciles the run with Ray, so the run ends in the store even if nobody else watches.

Example::

    run = follow(store, run_id, lambda text: print(text, end=""))
    run["status"]                                  # completed, failed, interrupted or lost
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tidal.errors import ConfigError, RunNotFound
from tidal.remote.cluster import RayCluster
from tidal.remote.handover import reconcile
from tidal.remote.queue import ENDED, ON_RAY, is_served
from tidal.status import RunStatus
from tidal.tracking.store import Store

OPEN = (RunStatus.QUEUED.value, RunStatus.RUNNING.value)


class _Output:
    """Where new text comes from: Ray's job log (by offset) or the run's console in the store (by id)."""

    def __init__(self, store: Store, run_id: str, write: Callable[[str], None]) -> None:
        self.store, self.run_id, self.write = store, run_id, write
        self.cluster: RayCluster | None = None
        self.ray_job: str | None = None
        self.offset = 0
        self.after = 0
        self.said = ""

    def show(self, entry: dict[str, Any] | None) -> None:
        job = entry.get("ray_job_id") if entry else None
        if entry and not job and entry.get("reason") and entry["reason"] != self.said:
            self.said = entry["reason"]
            self.write(f"[tidal] run {self.run_id} is {entry['status']}: {self.said}\n")
        if job and entry and self._ray(entry):
            self._ray_text(str(job))
        else:
            self._store_text()

    def _ray(self, entry: dict[str, Any]) -> bool:
        if self.cluster is None:
            try:
                self.cluster = RayCluster(entry["address"])
            except ConfigError as error:
                if not self.said.startswith("[ray]"):
                    self.said = f"[ray] {error}"
                    self.write(f"[tidal] {error}; showing what the run logged to the store instead\n")
                return False
        return True

    def _ray_text(self, job: str) -> None:
        if job != self.ray_job:  # a retry is a new Ray job: its log starts over
            self.ray_job, self.offset = job, 0
        assert self.cluster is not None
        try:
            text = self.cluster.logs(job)
        except ConfigError:
            return
        if len(text) > self.offset:
            self.write(text[self.offset:])
            self.offset = len(text)

    def _store_text(self) -> None:
        while chunks := self.store.logs(self.run_id, after=self.after):
            self.write("".join(chunk["text"] for chunk in chunks))
            self.after = chunks[-1]["id"]


def follow(store: Store, run_id: str, write: Callable[[str], None], poll_seconds: float = 1.0) -> dict[str, Any]:
    """Write the run's output as it comes until the run ends; the run as it ended."""
    output = _Output(store, run_id, write)
    direct = not is_served(store)
    while True:
        entry = _entry(store, run_id)
        if direct and entry and entry["status"] in ON_RAY and output.cluster is not None:
            reconcile(store, entry, output.cluster)
            entry = store.queue_entry(run_id)
        output.show(entry)
        run = store.get_run(run_id)
        if (entry is None or entry["status"] in ENDED) and run["status"] not in OPEN:
            output.show(entry)
            return run
        time.sleep(poll_seconds)


def _entry(store: Store, run_id: str) -> dict[str, Any] | None:
    try:
        return store.queue_entry(run_id)
    except RunNotFound:
        return None  # a run that was not submitted: its console in the store


def show_once(store: Store, run_id: str, write: Callable[[str], None]) -> None:
    """What the run wrote so far (Ray's log of its job when reachable, else its console in the store)."""
    _Output(store, run_id, write).show(_entry(store, run_id))


def exit_code(run: dict[str, Any]) -> int:
    """A followed run's end as the command's exit status: 0 completed, 130 interrupted, 1 otherwise."""
    return {RunStatus.COMPLETED.value: 0, RunStatus.INTERRUPTED.value: 130}.get(run["status"], 1)
