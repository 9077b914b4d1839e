"""What ``run.log_metric`` costs the caller, side by side with writing the same point synchronously,
and how soon a burst of points logged to a tidal server over HTTP is stored.

Prints µs per call for: tidal's log_metric (checked, queued; a background writer batches to
SQLite), and a synchronous write of the same point to the same store (one transaction per call,
as a tracker that logs synchronously does). Then logs ``--http-points`` (1M) points to a
``tidal server`` started in a subprocess and prints the seconds from the last call until all are
stored. Targets: ≤ 20 µs per call in the caller; 1M points over HTTP stored within 30 s.

    python bench/tracking.py [--calls 20000] [--http-points 1000000]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from tidal.tracking.httpstore import HTTPStore
from tidal.tracking.run import Run
from tidal.tracking.store import Batch
from tidal.tracking.stores import open_store

TARGET_US = 20.0
TARGET_HTTP_SECONDS = 30.0


def queued(home: Path, calls: int) -> tuple[float, float]:
    store = open_store(None, home=home)
    run = Run(store, project="bench", name="queued", capture=False)
    started = time.perf_counter()
    for step in range(calls):
        run.log_metric("loss", 1.0 / (step + 1), step=step)
    in_caller = time.perf_counter() - started
    run.finish()
    total = time.perf_counter() - started
    assert len(store.metrics(run.id)["loss"]) == calls
    return in_caller, total


def synchronous(home: Path, calls: int) -> float:
    store = open_store(None, home=home)
    run = Run(store, project="bench", name="synchronous", capture=False)
    started = time.perf_counter()
    for step in range(calls):
        store.log_batch(run.id, Batch(uuid.uuid4().hex, metrics=[("loss", step, 1.0 / (step + 1), time.time())]))
    elapsed = time.perf_counter() - started
    run.finish()
    return elapsed


def over_http(home: Path, points: int) -> tuple[float, float]:
    """(seconds in the caller, seconds from the last call until stored) for ``points`` points
    logged to a tidal server in its own process."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "tidal", "server", "--port", str(port), "--store",
               f"sqlite:///{home / 'server.db'}", "--artifacts", str(home / "artifacts")]
    server = subprocess.Popen(command, env=os.environ | {"TIDAL_HOME": str(home)}, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_until_up(url)
        store = HTTPStore(url)
        run = Run(store, project="bench", name="http", capture=False)
        started = time.perf_counter()
        for step in range(points):
            run.log_metric("loss", 1.0 / (step + 1), step=step)
        last_call = time.perf_counter()
        run.finish()
        stored = time.perf_counter()
        assert len(store.metrics(run.id, ["loss"])["loss"]) == points
        return last_call - started, stored - last_call
    finally:
        server.terminate()
        server.wait()


def _wait_until_up(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(url + "/healthz", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"tidal server at {url} did not start")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--sync-calls", type=int, default=2_000)
    parser.add_argument("--http-points", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        in_caller, total = queued(Path(folder) / "a", args.calls)
        sync = synchronous(Path(folder) / "b", args.sync_calls)
        (Path(folder) / "c").mkdir()
        http_caller, http_stored = over_http(Path(folder) / "c", args.http_points)
    caller_us = in_caller / args.calls * 1e6
    print(f"{'':46s} {'µs/call':>9s}")
    print(f"{'tidal log_metric, in the caller':46s} {caller_us:9.2f}")
    print(f"{'tidal log_metric, until stored (finish)':46s} {total / args.calls * 1e6:9.2f}")
    print(f"{'synchronous write of the same point (SQLite)':46s} {sync / args.sync_calls * 1e6:9.2f}")
    print(f"synchronous / tidal in the caller: {sync / args.sync_calls / (in_caller / args.calls):.0f}x")
    print(f"{args.http_points} points to a tidal server over HTTP: {http_caller / args.http_points * 1e6:.2f} µs/call "
          f"in the caller, all stored {http_stored:.1f} s after the last call")
    met = caller_us <= TARGET_US and http_stored <= TARGET_HTTP_SECONDS
    print(f"target ≤ {TARGET_US:.0f} µs per call in the caller: {'met' if caller_us <= TARGET_US else 'NOT met'}")
    print(f"target ≤ {TARGET_HTTP_SECONDS:.0f} s until stored over HTTP: "
          f"{'met' if http_stored <= TARGET_HTTP_SECONDS else 'NOT met'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
