"""tidal's Ray engine beside the local engine and plain Ray Data, on one local Ray, in one run.

Prints, side by side:

1. overhead: a no-op processor over ``--overhead-items`` items (µs per item, startup included),
   and over a tenth of them: the fixed startup (seconds) and the cost per item (µs, the slope
   between the two runs; Ray Data's startup varies by more than its per-item cost) of the local
   engine (process pool), the Ray engine and Ray Data's ``map_batches`` (a function, so Ray
   fuses it with the read: its cheapest form), the same batch size for all;
2. the same work (``--micros`` of CPU per item, ``--items`` items): seconds for each, and the
   Ray engine / Ray Data ratio (goal ≤ 1.2x);
3. the resume test: a driver killed with ``kill -9`` once half the items are processed, then
   run again; items processed twice (tidal: at most the batches in flight; Ray Data: all).

tidal's runs commit every result and its ledger to SQLite; Ray Data's results only reach the
driver (iter_batches), which favours Ray Data.

    python bench/ray_engine.py [--items 20000] [--micros 500] [--overhead-items 100000]
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from tidal.config.job import parse_job
from tidal.engines.base import Engine
from tidal.engines.local import LocalEngine
from tidal.jobs.runner import run_job
from tidal.processors.base import Processor
from tidal.settings import RAY_BATCHES_AHEAD
from tidal.sources.base import Item

BATCH = 100
PER_PARTITION = 1000
WORKERS = 2
GOAL = 1.2
RAY_ENVIRONMENT = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0",
                   "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


def spin(seconds: float) -> None:
    """The work: burn ``seconds`` of CPU (the same for every engine)."""
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        pass


def log_keys(log: str | None, keys: list[int]) -> None:
    if log:
        with open(log, "a") as file:
            file.write("".join(f"{key}\n" for key in keys))


class Spin(Processor):
    """tidal's side: ``micros`` of CPU per item; the keys processed appended to ``log``."""

    def __init__(self, micros: float = 0.0, log: str | None = None, batch_size: int = BATCH) -> None:
        self.micros, self.log, self.batch_size = micros, log, batch_size

    def process(self, batch: list[Item]) -> list[Any]:
        spin(len(batch) * self.micros / 1e6)
        log_keys(self.log, [item.data for item in batch])
        return [{"i": item.data} for item in batch]


def spin_batch(batch: dict[str, np.ndarray], micros: float, log: str | None) -> dict[str, np.ndarray]:
    """Ray Data's side: the same work, the same log."""
    spin(len(batch["id"]) * micros / 1e6)
    log_keys(log, [int(key) for key in batch["id"]])
    return {"i": batch["id"]}


def job_data(items: int, micros: float, log: str | None = None) -> dict[str, Any]:
    return {"source": {"tidal.sources.Range": {"n": items, "per_partition": PER_PARTITION}},
            "processor": {"ray_engine.Spin": {"micros": micros, "log": log}}, "imports": ["ray_engine"]}


def tidal_seconds(engine: Engine, items: int, micros: float) -> float:
    job = parse_job(job_data(items, micros), "bench", Path(__file__).parent)
    with tempfile.TemporaryDirectory() as home:
        started = time.perf_counter()
        report = run_job(job, state_home=Path(home), engine=engine)
        elapsed = time.perf_counter() - started
    assert report.done == items, report
    return elapsed


def ray_data_seconds(items: int, micros: float, log: str | None = None) -> float:
    import ray

    started = time.perf_counter()
    dataset = ray.data.range(items, override_num_blocks=max(1, items // PER_PARTITION)).map_batches(
        spin_batch, batch_size=BATCH, fn_kwargs={"micros": micros, "log": log})
    count = sum(len(batch["i"]) for batch in dataset.iter_batches(batch_size=None))
    elapsed = time.perf_counter() - started
    assert count == items, count
    return elapsed


# --- the resume test: drivers in their own processes, killed with kill -9 ---------------------------

def tidal_driver(config: Path, home: Path, address: str) -> subprocess.Popen[bytes]:
    environment = os.environ | RAY_ENVIRONMENT | {"TIDAL_HOME": str(home), "PYTHONPATH": str(Path(__file__).parent)}
    return subprocess.Popen([sys.executable, "-m", "tidal", "map", str(config), "--quiet", "--engine", "ray",
                             "--address", address, "--workers", str(WORKERS)], env=environment,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def ray_data_driver(items: int, micros: float, log: Path, address: str) -> subprocess.Popen[bytes]:
    environment = os.environ | RAY_ENVIRONMENT | {"PYTHONPATH": str(Path(__file__).parent)}
    folder = str(Path(__file__).parent)
    code = (f"import ray, ray_engine; ray.init(address={address!r}, logging_level='ERROR',"
            f" runtime_env={{'env_vars': {{'PYTHONPATH': {folder!r}}}}});"
            " ray.data.DataContext.get_current().enable_progress_bars = False;"
            f" ray_engine.ray_data_seconds({items}, {micros!r}, {str(log)!r})")
    return subprocess.Popen([sys.executable, "-c", code], env=environment,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def lines(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


def kill_at_half(process: subprocess.Popen[bytes], log: Path, items: int) -> int:
    """kill -9 once half the items are processed; the number processed by then."""
    deadline = time.monotonic() + 300
    while len(lines(log)) < items // 2 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    _, stderr = process.communicate()
    if process.returncode != -signal.SIGKILL:
        raise RuntimeError(f"the driver ended before it was killed: {stderr.decode()[-2000:]}")
    time.sleep(1.0)  # Ray ends the dead driver's workers
    return len(lines(log))


def finish(process: subprocess.Popen[bytes]) -> None:
    _, stderr = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"the second driver failed: {stderr.decode()[-2000:]}")


def processed_twice(log: Path) -> int:
    return sum(count - 1 for count in collections.Counter(lines(log)).values())


def resume_test(items: int, micros: float, address: str, folder: Path) -> dict[str, tuple[int, int, float]]:
    """For each: (processed before the kill, processed twice in all, seconds of the second run)."""
    results = {}
    config, log = folder / "job.json", folder / "tidal.log"
    config.write_text(json.dumps(job_data(items, micros, str(log))))
    killed = kill_at_half(tidal_driver(config, folder / "home", address), log, items)
    committed = committed_items(folder / "home")
    started = time.perf_counter()
    finish(tidal_driver(config, folder / "home", address))
    results["tidal Ray engine"] = (killed, processed_twice(log), time.perf_counter() - started)
    print(f"  tidal: {committed} items committed at the kill")
    log = folder / "raydata.log"
    killed = kill_at_half(ray_data_driver(items, micros, log, address), log, items)
    started = time.perf_counter()
    finish(ray_data_driver(items, micros, log, address))
    results["Ray Data map_batches"] = (killed, processed_twice(log), time.perf_counter() - started)
    return results


def committed_items(home: Path) -> int:
    with sqlite3.connect(home / "tidal.db") as db:
        return int(db.execute("SELECT COUNT(*) FROM items WHERE status = 'done'").fetchone()[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--micros", type=float, default=500.0, help="CPU per item, µs")
    parser.add_argument("--overhead-items", type=int, default=100_000)
    args = parser.parse_args()
    os.environ.update(RAY_ENVIRONMENT)
    sys.path.insert(0, str(Path(__file__).parent))  # Ray Data's workers pickle spin_batch by module
    import ray

    from tidal.engines.ray import RayEngine

    context = ray.init(_node_ip_address="127.0.0.1", num_cpus=WORKERS, include_dashboard=False,
                       logging_level="ERROR", runtime_env={"env_vars": {"PYTHONPATH": str(Path(__file__).parent)}})
    ray.data.DataContext.get_current().enable_progress_bars = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    try:
        ray_engine = RayEngine(concurrency=WORKERS)
        engines: dict[str, Any] = {
            f"tidal local engine, {WORKERS} workers": lambda n, us: tidal_seconds(LocalEngine(WORKERS), n, us),
            f"tidal Ray engine, {WORKERS} actors": lambda n, us: tidal_seconds(ray_engine, n, us),
            "Ray Data map_batches": ray_data_seconds,
        }
        ray_data_seconds(1000, 0.0)  # Ray Data's first run starts its own machinery
        n, work = args.overhead_items, args.items
        print(f"local Ray {ray.__version__}, {WORKERS} CPUs; batch {BATCH}, {PER_PARTITION} items per partition")
        print(f"{'no-op processor:':32s} {f'µs/item, {n} items':>19s} {'startup s':>10s} {'slope µs/item':>14s}"
              f" {f'{work} items x {args.micros:g} µs, s':>24s}")
        timings = {}
        for name, run in engines.items():
            small, large = run(n // 10, 0.0), run(n, 0.0)
            per_item = (large - small) / (n - n // 10)  # without the fixed startup (noisy where startup varies)
            timings[name] = run(work, args.micros)
            print(f"{name:32s} {large / n * 1e6:19.1f} {small - per_item * (n // 10):10.2f} {per_item * 1e6:14.1f}"
                  f" {timings[name]:24.2f}")
        ratio = timings[f"tidal Ray engine, {WORKERS} actors"] / timings["Ray Data map_batches"]
        print(f"tidal Ray engine / Ray Data: {ratio:.2f}x (goal ≤ {GOAL}x): {'met' if ratio <= GOAL else 'NOT met'}")
        with tempfile.TemporaryDirectory() as folder:
            resumed = resume_test(work, args.micros, context.address_info["gcs_address"], Path(folder))
        bound = WORKERS * (RAY_BATCHES_AHEAD + 1) * BATCH
        print(f"resume after kill -9 at 50 % of {work} items (tidal's bound: {WORKERS} actors x"
              f" {RAY_BATCHES_AHEAD + 1} batches x {BATCH} = {bound}):")
        print(f"{'':32s} {'done at the kill':>17s} {'processed twice':>16s} {'rerun s':>8s}")
        for name, (killed, twice, seconds) in resumed.items():
            print(f"{name:32s} {killed:17d} {twice:16d} {seconds:8.2f}")
        met = ratio <= GOAL and resumed["tidal Ray engine"][1] <= bound
    finally:
        ray.shutdown()
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
