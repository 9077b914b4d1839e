"""The Ray engine against a real Ray started once for this module on 127.0.0.1 (2 CPUs)."""

from __future__ import annotations

import collections
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from suite import EngineSuite, range_job, rows

from jobrows import job_rows
from rayhost import RAY_ENVIRONMENT, local_ray
from tidal.config.job import load_config, parse_job
from tidal.engines.ray import RayEngine
from tidal.errors import ConfigError
from tidal.jobs.runner import run_job
from tidal.settings import RAY_BATCHES_AHEAD

ray = pytest.importorskip("ray", reason="the Ray engine's tests need Ray: pip install -e '.[ray]'")



@pytest.fixture(scope="module")
def ray_address() -> Iterator[str]:
    """A local Ray of 2 CPUs for the whole module; its GCS address, for drivers in other processes."""
    with local_ray(2) as address:
        yield address


class TestRayEngine(EngineSuite):
    @pytest.fixture
    def engine(self, ray_address: str) -> RayEngine:
        return RayEngine(concurrency=2)


def test_work_is_spread_over_actors(ray_address: str, tmp_path: Path) -> None:
    job = range_job(200, 10, delay=0.01)
    run_job(job, state_home=tmp_path, engine=RayEngine(concurrency=2))
    assert len({row["pid"] for row in rows(tmp_path, job)}) == 2


def test_a_worker_that_dies_fails_only_its_partition(ray_address: str, tmp_path: Path) -> None:
    heal = tmp_path / "heal"
    job = range_job(100, 10, crash_on=42, heal_file=str(heal))
    report = run_job(job, state_home=tmp_path, engine=RayEngine(concurrency=2))
    assert (report.failed_partitions, report.exit_code) == (1, 3)
    done = {row["index"] for row in rows(tmp_path, job)}
    assert set(range(40)) | set(range(50, 100)) <= done
    assert 42 not in done
    failed = [row for row in job_rows(tmp_path, job.job_id, True) if row["status"] == "failed"]
    assert failed == []  # the partition failed as a whole; its sent rows were kept
    heal.touch()
    retried = run_job(job, state_home=tmp_path, engine=RayEngine(concurrency=2), retry_failed=True)
    assert (retried.done, retried.failed_partitions, retried.exit_code) == (100, 0, 0)
    assert retried.processed == 100 - len(done)


def test_fractional_cpus_fit_more_actors(ray_address: str, tmp_path: Path) -> None:
    engine = RayEngine(num_cpus=0.5)
    report = run_job(range_job(40, 5), state_home=tmp_path, engine=engine)
    assert (report.done, engine.workers) == (40, 4)


def test_asking_for_gpus_the_cluster_lacks_is_refused(ray_address: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"engine.ray: num_gpus is 0.25 but the Ray cluster has 0 GPUs"):
        run_job(range_job(10, 5), state_home=tmp_path, engine=RayEngine(num_gpus=0.25))


def test_a_runtime_env_ray_cannot_set_up_stops_the_job(ray_address: str, tmp_path: Path) -> None:
    engine = RayEngine(concurrency=1, runtime_env={"conda": "no-such-environment"})
    with pytest.raises(ConfigError, match=r"engine.ray.runtime_env: Ray could not set it up"):
        run_job(range_job(10, 5), state_home=tmp_path, engine=engine)


def test_engine_settings_are_checked_with_the_config() -> None:
    data: dict[str, Any] = {"source": {"tidal.sources.Range": {"n": 4}},
                            "processor": {"tidal.processors.NoOp": {}}}
    job = parse_job(data | {"engine": {"ray": {"num_gpus": 0.25, "concurrency": 3}}}, "job.hjson")
    engine = job.build_engine()
    assert (type(engine), engine.num_gpus, engine.concurrency) == (RayEngine, 0.25, 3)
    with pytest.raises(ConfigError, match=r"engine\.ray.*num_gpu"):
        parse_job(data | {"engine": {"ray": {"num_gpu": 1}}}, "job.hjson")
    with pytest.raises(ConfigError, match="concurrency must be at least 1"):
        parse_job(data | {"engine": {"ray": {"concurrency": 0}}}, "job.hjson").build_engine()


# --- the driver killed with kill -9, through the CLI, on the same cluster --------------------------

ITEMS, PER_PARTITION, BATCH = 300, 20, 4
LOGGING_PROCESSOR = """
import time
from tidal.processors.base import Processor

class Logged(Processor):
    def __init__(self, log: str, batch_size: int = 4) -> None:
        self.log, self.batch_size = log, batch_size

    def process(self, batch):
        time.sleep(0.01 * len(batch))
        with open(self.log, "a") as file:
            file.write("".join(f"{item.data}\\n" for item in batch))
        return [{"i": item.data} for item in batch]
"""


def tidal_map(config: Path, home: Path, address: str) -> subprocess.Popen[bytes]:
    environment = os.environ | RAY_ENVIRONMENT | {"TIDAL_HOME": str(home)}
    return subprocess.Popen([sys.executable, "-m", "tidal", "map", str(config), "--quiet", "--engine", "ray",
                             "--address", address], env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def done_count(home: Path) -> int:
    try:
        with sqlite3.connect(home / "tidal.db", timeout=10) as db:
            return int(db.execute("SELECT COUNT(*) FROM items WHERE status = 'done'").fetchone()[0])
    except sqlite3.OperationalError:  # no file or no schema yet
        return 0


@pytest.mark.slow
def test_driver_killed_with_kill_9_resumes_redoing_at_most_the_batches_in_flight(
    ray_address: str, tmp_path: Path
) -> None:
    log = tmp_path / "processed.log"
    (tmp_path / "loggedmod.py").write_text(LOGGING_PROCESSOR)
    config = tmp_path / "job.json"
    config.write_text(json.dumps({
        "source": {"tidal.sources.Range": {"n": ITEMS, "per_partition": PER_PARTITION}},
        "processor": {"loggedmod.Logged": {"log": str(log), "batch_size": BATCH}}, "imports": ["loggedmod"],
        "engine": {"ray": {"concurrency": 2}},
    }))
    home = tmp_path / "home"
    first = tidal_map(config, home, ray_address)
    deadline = time.monotonic() + 120
    while done_count(home) < ITEMS // 3 and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.communicate()
    saved = done_count(home)
    assert 0 < saved < ITEMS
    time.sleep(1.0)  # the killed driver's actors are ended by Ray (they die with their owner)

    second = tidal_map(config, home, ray_address)
    _, stderr = second.communicate(timeout=180)
    assert second.returncode == 0, stderr.decode()
    [job] = load_config(config)
    found = job_rows(home, job.job_id)
    assert sorted(row["i"] for row in found) == list(range(ITEMS))  # nothing lost, nothing twice
    assert f"{ITEMS - saved} processed in this run" in stderr.decode()
    times = collections.Counter(int(line) for line in log.read_text().split())
    redone = sum(count - 1 for count in times.values())
    # what the killed driver had not committed: each actor's running batch and those it ran ahead
    assert redone <= 2 * (RAY_BATCHES_AHEAD + 1) * BATCH, redone


def test_an_unreachable_address_is_a_config_error_naming_it(tmp_path: Path) -> None:
    config = tmp_path / "job.json"
    config.write_text(json.dumps({"source": {"tidal.sources.Range": {"n": 4}},
                                  "processor": {"tidal.processors.NoOp": {}}}))
    process = tidal_map(config, tmp_path / "home", "127.0.0.1:9")
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 2, stderr.decode()
    assert re.search(r"engine.ray.address: cannot connect to Ray at '127.0.0.1:9'", stderr.decode())


def test_ray_runs_beside_mediapipe_in_one_environment() -> None:
    """tidal[ray] beside tidal[pose]: one protobuf both accept (the ray extra keeps it below 5)."""
    pytest.importorskip("mediapipe", reason="needs tidal[pose] installed beside tidal[ray]")
    code = ("import mediapipe, google.protobuf, ray, ray.data, ray.serve;"
            " from mediapipe.framework.formats import landmark_pb2;"
            " print(google.protobuf.__version__, landmark_pb2.NormalizedLandmark(x=0.5).x)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    protobuf, value = done.stdout.split()
    assert int(protobuf.split(".")[0]) < 5 and float(value) == 0.5


def test_command_line_options_keep_the_configs_ray_settings(tmp_path: Path) -> None:
    from tidal.cli.map import _engine_override

    config = tmp_path / "job.json"
    config.write_text(json.dumps({"source": {"tidal.sources.Range": {"n": 4}},
                                  "processor": {"tidal.processors.NoOp": {}},
                                  "engine": {"ray": {"num_cpus": 0.5, "address": "auto"}}}))
    override = _engine_override(config, "ray", 3, "ray://head:10001")
    assert override == {"engine": {"ray": {"num_cpus": 0.5, "concurrency": 3, "address": "ray://head:10001"}}}
    [job] = load_config(config, override)
    assert (job.engine.target, job.engine.kwargs["address"]) == ("tidal.engines.ray.RayEngine", "ray://head:10001")
    assert _engine_override(config, "local", 2, None) == {"engine": {"local": {"workers": 2}}}
