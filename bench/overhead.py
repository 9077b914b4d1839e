"""Per-item cost of tidal itself: a no-op processor over cheap synthetic items.

Prints, side by side in one run: a bare Python loop over the same items (the floor), the inline
engine, and the local engine (process pool), each as wall-clock µs per item including the
ledger and results committed to SQLite. Target: ≤ 20 µs per item for the local engine.

    python bench/overhead.py [--items 200000] [--workers 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from tidal.config.job import parse_job
from tidal.engines.base import Engine
from tidal.engines.inline import InlineEngine
from tidal.engines.local import LocalEngine
from tidal.jobs.runner import run_job
from tidal.sources.range import Range

TARGET_US = 20.0


def bare_loop(items: int, per_partition: int) -> float:
    source = Range(items, per_partition)
    started = time.perf_counter()
    for partition in source.partitions():
        batch: list[object] = []
        for item in source.read(partition):
            batch.append(item)
            if len(batch) == 256:
                [{} for _ in batch]
                batch = []
    return time.perf_counter() - started


def tidal_run(engine: Engine, items: int, per_partition: int) -> float:
    job = parse_job({"source": {"tidal.sources.Range": {"n": items, "per_partition": per_partition}},
                     "processor": {"tidal.processors.NoOp": {"batch_size": 256}}}, "bench")
    with tempfile.TemporaryDirectory() as home:
        started = time.perf_counter()
        report = run_job(job, state_home=Path(home), engine=engine)
        elapsed = time.perf_counter() - started
    assert report.done == items, report
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--per-partition", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    n = args.items
    rows = [("bare loop (floor)", bare_loop(n, args.per_partition)),
            ("tidal inline engine", tidal_run(InlineEngine(), n, args.per_partition)),
            (f"tidal local engine, {args.workers} workers",
             tidal_run(LocalEngine(workers=args.workers), n, args.per_partition))]
    floor = rows[0][1]
    print(f"{n} items, no-op processor, batch 256, results and ledger committed to SQLite")
    print(f"{'':34s} {'µs/item':>9s} {'x floor':>9s}")
    for name, seconds in rows:
        print(f"{name:34s} {seconds / n * 1e6:9.2f} {seconds / floor:9.1f}")
    local_us = rows[2][1] / n * 1e6
    verdict = "met" if local_us <= TARGET_US else "NOT met"
    print(f"target ≤ {TARGET_US:.0f} µs/item for the local engine (startup included): {verdict}")
    return 0 if local_us <= TARGET_US else 1


if __name__ == "__main__":
    sys.exit(main())
