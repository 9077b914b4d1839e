"""What ``run.log_metric`` costs the caller, side by side with writing the same point synchronously.

Prints µs per call for: tidal's log_metric (queued; a background writer batches to SQLite), and a
synchronous write of the same point to the same store (one transaction per call, as a tracker
that logs synchronously does). Target: ≤ 20 µs per call in the caller.

    python bench/tracking.py [--calls 20000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path

from tidal.tracking.run import Run
from tidal.tracking.store import Batch
from tidal.tracking.stores import open_store

TARGET_US = 20.0


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--sync-calls", type=int, default=2_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        in_caller, total = queued(Path(folder) / "a", args.calls)
        sync = synchronous(Path(folder) / "b", args.sync_calls)
    caller_us = in_caller / args.calls * 1e6
    print(f"{'':46s} {'µs/call':>9s}")
    print(f"{'tidal log_metric, in the caller':46s} {caller_us:9.2f}")
    print(f"{'tidal log_metric, until stored (finish)':46s} {total / args.calls * 1e6:9.2f}")
    print(f"{'synchronous write of the same point (SQLite)':46s} {sync / args.sync_calls * 1e6:9.2f}")
    print(f"synchronous / tidal in the caller: {sync / args.sync_calls / (in_caller / args.calls):.0f}x")
    verdict = "met" if caller_us <= TARGET_US else "NOT met"
    print(f"target ≤ {TARGET_US:.0f} µs per call in the caller: {verdict}")
    return 0 if caller_us <= TARGET_US else 1


if __name__ == "__main__":
    sys.exit(main())
