"""The queue's fairness on a real Ray head (2 CPUs, no GPU): smaller runs go past a big one that
does not fit (backfill) until it has waited TIDAL_QUEUE_BACKFILL_SECONDS; then it holds the queue
and starts first, as soon as the runs on Ray have freed what it asks for."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from liveserver import TOKEN, LiveServer, sqlite_store, start_server
from tidal.errors import ConfigError
from tidal.remote.cluster import RayCluster
from tidal.remote.dispatcher import Dispatcher
from tidal.remote.queue import cancel
from tidal.remote.submit import submit
from tidal.settings import queue_backfill_seconds
from tidal.tracking.httpstore import HTTPStore
from tidal.tracking.server.app import create_app
from tidal.tracking.store import Store

SLEEP = "import sys, time\ntime.sleep(float(sys.argv[1]))\n"


@pytest.fixture
def queue(tmp_path: Path) -> Iterator[tuple[Store, HTTPStore]]:
    """A tidal server without its dispatcher (lifespan off: the test's own dispatcher ticks by hand)
    over ``backend``; runs are submitted through it and wait in its queue."""
    backend = sqlite_store(tmp_path / "server-home")
    live: LiveServer = start_server(create_app(backend, token=TOKEN))
    client = HTTPStore(live.url, token=TOKEN)
    yield backend, client
    client.close()
    live.stop()
    backend.close()


def tick_until(dispatcher: Dispatcher, done: Callable[[], bool], what: str, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {seconds} s")
        dispatcher.tick()
        time.sleep(0.5)


@pytest.mark.slow
def test_a_big_run_that_waited_past_the_backfill_time_holds_the_queue_and_starts_first(
        ray_head: str, queue: tuple[Store, HTTPStore], tmp_path: Path) -> None:
    backend, client = queue
    (tmp_path / "sleep.py").write_text(SLEEP)

    def queued(cpus: float = 0.0, gpus: float = 0.0, priority: int = 0, seconds: str = "0") -> str:
        return submit("sleep.py", [seconds], address=ray_head, cpus=cpus, gpus=gpus, priority=priority,
                      folder=tmp_path, store=client).run_id

    def entry(run_id: str) -> dict[str, Any]:
        return backend.queue_entry(run_id)

    dispatcher = Dispatcher(backend, token=TOKEN, backfill_seconds=3600)
    cluster = RayCluster(ray_head)
    blocker = queued(cpus=1.5, priority=9, seconds="120")
    tick_until(dispatcher, lambda: entry(blocker)["status"] == "running", "the 1.5-CPU run never ran")
    tick_until(dispatcher, lambda: cluster.free().cpus == 0.5, "Ray's load report never showed 0.5 CPU free")

    never_fits = queued(gpus=1, priority=7)  # first in line, but the cluster has no GPU at all
    big = queued(cpus=2, priority=5)
    small = queued(cpus=0.5)
    dispatcher.tick()  # within the backfill time: the small run goes past the big one
    assert entry(small)["status"] in ("submitted", "running", "done")
    assert entry(big)["reason"] == "needs 2 CPUs, cluster has 0.5 free"
    assert entry(never_fits)["reason"] == "needs 1 GPU, cluster has 0 free"
    tick_until(dispatcher, lambda: entry(small)["status"] == "done", "the small run never ended")

    dispatcher.backfill_seconds = 0.0  # the big run has now waited longer than that
    behind = queued(cpus=0.5)
    tick_until(dispatcher, lambda: cluster.free().cpus == 0.5, "the small run's CPU never came free")
    for _ in range(3):  # the run behind would fit in what is free: it is held, not short of CPUs
        dispatcher.tick()
        time.sleep(0.5)
    since = time.strftime("%H:%M", time.localtime(entry(big)["created_at"]))
    assert entry(big)["reason"] == (f"holds the queue: waiting for 2 CPUs since {since}; the runs behind it wait "
                                    "until it starts")
    assert (entry(behind)["status"], entry(behind)["reason"]) == (
        "waiting", f"waits behind run {big}, which holds the queue (waiting for 2 CPUs since {since})")
    # one that can never start holds nothing, even first in line and past the backfill time
    assert (entry(never_fits)["status"], entry(never_fits)["reason"]) == ("waiting", "needs 1 GPU, cluster has 0 free")

    assert cancel(backend, blocker) in ("cancelling", "cancelled")  # Ray stops it: its 1.5 CPUs come free
    tick_until(dispatcher, lambda: entry(big)["status"] != "waiting", "the big run never went to Ray")
    assert entry(behind)["status"] == "waiting"  # the big run went first
    tick_until(dispatcher, lambda: entry(behind)["status"] == "done", "the run behind never ran after it")
    assert entry(big)["status"] == "done" and entry(big)["submitted_at"] < entry(behind)["submitted_at"]
    assert entry(blocker)["status"] == "cancelled"
    assert cancel(backend, never_fits) == "cancelled"


def test_the_backfill_time_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TIDAL_QUEUE_BACKFILL_SECONDS", raising=False)
    assert queue_backfill_seconds() == 300
    monkeypatch.setenv("TIDAL_QUEUE_BACKFILL_SECONDS", "90")
    assert queue_backfill_seconds() == 90
    for wrong in ("five minutes", "-1", "nan"):
        monkeypatch.setenv("TIDAL_QUEUE_BACKFILL_SECONDS", wrong)
        with pytest.raises(ConfigError, match=r"TIDAL_QUEUE_BACKFILL_SECONDS=.* is not a number of seconds"):
            queue_backfill_seconds()
