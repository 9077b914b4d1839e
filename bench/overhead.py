"""Per-item cost of tidal itself: a no-op processor over cheap synthetic items.

Prints, side by side in one run: a bare Python loop over the same items (the floor), the inline
engine, and the local engine (process pool), each as wall-clock µs per item including the
ledger and results committed to the embedded SQLite store; then the local engine with the
ledger on a PostgreSQL server (``--postgres URL``, default the local test server; skipped when
unreachable) and its ratio to the embedded ledger. Targets: ≤ 20 µs per item for the local
engine on the embedded store, ≤ 60 µs with the PostgreSQL ledger.

    python bench/overhead.py [--items 200000] [--workers 2] [--postgres postgresql://...]
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

from tidal.config.job import parse_job
from tidal.engines.base import Engine
from tidal.engines.inline import InlineEngine
from tidal.engines.local import LocalEngine
from tidal.jobs.runner import run_job
from tidal.sources.range import Range
from tidal.tracking.stores import open_store

TARGET_US = 20.0
POSTGRES_TARGET_US = 60.0
POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


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


def tidal_run(engine: Engine, items: int, per_partition: int, store_url: str | None = None) -> float:
    job = parse_job({"source": {"tidal.sources.Range": {"n": items, "per_partition": per_partition}},
                     "processor": {"tidal.processors.NoOp": {"batch_size": 256}}}, "bench")
    with tempfile.TemporaryDirectory() as home:
        store = open_store(store_url, home=Path(home))
        try:
            _forget(store, job.job_id)  # a server keeps the job of an earlier run of this benchmark
            started = time.perf_counter()
            report = run_job(job, state_home=Path(home), engine=engine, store=store)
            elapsed = time.perf_counter() - started
            _forget(store, job.job_id)
        finally:
            store.close()
    assert report.done == items, report
    return elapsed


def _forget(store: object, job_id: str) -> None:
    from sqlalchemy import delete

    from tidal.tracking import schema

    with store.engine.begin() as connection:  # type: ignore[attr-defined]
        for table in (schema.items, schema.partitions):
            connection.execute(delete(table).where(table.c.job_id == job_id))
        connection.execute(delete(schema.jobs).where(schema.jobs.c.id == job_id))


def reachable(url: str) -> bool:
    parts = urllib.parse.urlsplit(url)
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5432), timeout=1).close()
    except OSError:
        return False
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--per-partition", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--postgres", default=POSTGRES_URL, help="a PostgreSQL store URL ('' to skip)")
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
    met = local_us <= TARGET_US
    if args.postgres and reachable(args.postgres):
        seconds = tidal_run(LocalEngine(workers=args.workers), n, args.per_partition, args.postgres)
        postgres_us = seconds / n * 1e6
        print(f"{'tidal local engine, PostgreSQL ledger':34s} {postgres_us:9.2f} {seconds / floor:9.1f}")
        print(f"PostgreSQL ledger / embedded ledger: {postgres_us / local_us:.2f}x; target ≤ "
              f"{POSTGRES_TARGET_US:.0f} µs/item: {'met' if postgres_us <= POSTGRES_TARGET_US else 'NOT met'}")
        met = met and postgres_us <= POSTGRES_TARGET_US
    else:
        print(f"PostgreSQL ledger: skipped (no server at {args.postgres or '(none given)'})")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
