"""The Ray engine when a node dies mid-job, on a real two-node cluster on 127.0.0.1.

A head (whose CPU holds one actor) and a second node joined to it, each a ``ray start`` in a
session of its own (tests/rayhost.py); the second node is killed (SIGKILL to its raylet, agents
and workers at once) while partitions run there. The job is ``tidal map`` in a process of its own,
as a user runs it; its processor logs every item it processes with its session (each node's
processes are in a session of their own), so the test knows which node processed what.
"""

from __future__ import annotations

import collections
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from jobrows import job_rows
from rayhost import RAY_ENVIRONMENT, LocalCluster, RayNode, ray_cluster
from tidal.config.job import load_config, parse_job
from tidal.engines.ray import RayEngine
from tidal.errors import ConfigError

pytest.importorskip("ray", reason="the Ray engine's tests need Ray: pip install -e '.[ray]'")

ITEMS, PER_PARTITION, BATCH, DELAY = 240, 12, 2, 0.05
PROCESSOR = """
import os
import time
from tidal.processors.base import Processor

class NodeLogged(Processor):
    '''{"square": i*i}; logs "<session> <i>" for each item it processed (the session names the node).'''

    def __init__(self, log: str, delay: float, batch_size: int) -> None:
        self.log, self.delay, self.batch_size = log, delay, batch_size

    def process(self, batch):
        time.sleep(self.delay * len(batch))
        with open(self.log, "a") as file:
            file.write("".join(f"{os.getsid(0)} {item.data}\\n" for item in batch))
        return [{"square": item.data * item.data} for item in batch]
"""
RETRY = re.compile(r"partition (range:\d+-\d+): its Ray worker was lost with its node \(.*?\); running it again"
                   r" on another worker, skipping the (\d+) items it sent \(retry (\d+) of \d+\)")


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    """A head of 1 CPU for the module; each test joins (and loses) nodes of its own."""
    with ray_cluster(head_cpus=1) as cluster:
        yield cluster


@contextmanager
def joined(cluster: LocalCluster, cpus: int, resources: dict[str, float] | None = None) -> Iterator[RayNode]:
    node = cluster.add_node(cpus, resources)
    try:
        yield node
    finally:
        node.stop()  # gone before the next test places actors


def write_job(folder: Path, engine: dict[str, object]) -> tuple[Path, Path]:
    """The job's config and the processor's log."""
    log = folder / "processed.log"
    (folder / "nodelog.py").write_text(PROCESSOR)
    config = folder / "job.json"
    config.write_text(json.dumps({
        "source": {"tidal.sources.Range": {"n": ITEMS, "per_partition": PER_PARTITION}},
        "processor": {"nodelog.NodeLogged": {"log": str(log), "delay": DELAY, "batch_size": BATCH}},
        "imports": ["nodelog"], "engine": engine,
    }))
    return config, log


def tidal_map(config: Path, home: Path, *options: str) -> subprocess.Popen[bytes]:
    environment = os.environ | RAY_ENVIRONMENT | {"TIDAL_HOME": str(home)}
    return subprocess.Popen([sys.executable, "-m", "tidal", "map", str(config), "--quiet", *options],
                            env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def processed(log: Path) -> list[tuple[int, int]]:
    """(session, item) for every item the processor processed, in order."""
    if not log.exists():
        return []
    lines = [line.split() for line in log.read_text().splitlines()]
    return [(int(session), int(item)) for session, item in lines]


def finish(driver: subprocess.Popen[bytes], seconds: float = 300) -> str:
    """The job's stderr once it has ended; a job still running after ``seconds`` is killed and fails the test."""
    try:
        _, stderr = driver.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        driver.kill()
        _, stderr = driver.communicate()
        raise AssertionError(f"the job hung ({seconds:g} s): {stderr.decode()}") from None
    return stderr.decode()


def wait_until(condition: Callable[[], bool], driver: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 180
    while not condition():
        if driver.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"the job ended (or stalled) before the node could be killed: {finish(driver, 0.1)}")
        time.sleep(0.05)


def partition_of(item: int) -> str:
    start = item // PER_PARTITION * PER_PARTITION
    return f"range:{start}-{start + PER_PARTITION - 1}"


@pytest.mark.slow
def test_a_node_dying_mid_job_loses_nothing_and_its_partitions_run_again(cluster: LocalCluster,
                                                                         tmp_path: Path) -> None:
    config, log = write_job(tmp_path, {"ray": {"concurrency": 3}})
    [job] = load_config(config)
    home = tmp_path / "ray"
    with joined(cluster, cpus=2) as side:  # the head has 1 CPU: 2 of the 3 actors must run here
        driver = tidal_map(config, home, "--address", cluster.address)
        wait_until(lambda: sum(session == side.session for session, _ in processed(log)) >= 6, driver)
        side.kill()
        text = finish(driver)
    assert driver.returncode == 0, text

    found = job_rows(home, job.job_id, include_failed=True)
    assert sorted(row["index"] for row in found) == list(range(ITEMS))  # one row each: nothing lost or twice
    assert all(row["status"] == "done" and row["square"] == row["index"] ** 2 for row in found)
    # the progress: every item counted once, none as failed or unread
    assert f"job {job.job_id} completed: {ITEMS} items done, {ITEMS} processed in this run" in text
    assert f"stopped: {ITEMS}/{ITEMS} items" in text and ", 0 failed, 0 resumed" in text

    # the partitions the node was running ran again, skipping what they had sent
    items = processed(log)
    on_side = collections.Counter(partition_of(item) for session, item in items if session == side.session)
    # rows each retried partition had sent when lost (summed: one handed to the other lost actor
    # before that one's loss showed is lost twice)
    sent: collections.Counter[str] = collections.Counter()
    for partition, count, _ in RETRY.findall(text):
        sent[partition] += int(count)
    assert sent, text
    interrupted = {partition for partition, count in on_side.items() if count < PER_PARTITION}
    assert interrupted <= set(sent), (interrupted, sent, on_side)
    times = collections.Counter(item for _, item in items)
    for partition, count in sent.items():
        # what it had sent came from the lost node (a partition may have been lost before its first
        # batch: 0 and 0), and exactly the rest of what the node had processed was processed again
        redone = sum(times[item] - 1 for item in range(ITEMS) if partition_of(item) == partition)
        assert on_side[partition] >= count and redone == on_side[partition] - count, (
            partition, redone, on_side[partition], count)
    assert all(times[item] == 1 for item in range(ITEMS) if partition_of(item) not in sent)

    # the same results, value for value, as the local engine's
    local = tidal_map(config, tmp_path / "local", "--engine", "local", "--workers", "2")
    local_stderr = finish(local)
    assert local.returncode == 0, local_stderr
    assert job_rows(tmp_path / "local", job.job_id, include_failed=True) == found


@pytest.mark.slow
def test_losing_the_only_node_with_the_actors_resource_stops_the_job_and_a_rerun_resumes(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    config, log = write_job(tmp_path, {"ray": {"concurrency": 2, "resources": {"side": 1}}})
    [job] = load_config(config)
    home = tmp_path / "ray"
    with joined(cluster, cpus=2, resources={"side": 2}) as side:
        driver = tidal_map(config, home, "--address", cluster.address)
        wait_until(lambda: len(processed(log)) >= 6, driver)
        side.kill()
        text = finish(driver)
    assert driver.returncode == 2, text
    assert re.search(r"engine\.ray: no live node of the Ray cluster can hold a worker, which asks for 1 CPU, 1 side:"
                     r" none has 'side'; nodes lost during the job: \w+ \(127\.0\.0\.1\)\. The results so far"
                     r" are saved", text)
    saved = {row["index"] for row in job_rows(home, job.job_id)}
    assert 0 < len(saved) < ITEMS

    with joined(cluster, cpus=2, resources={"side": 2}):
        rerun = tidal_map(config, home, "--address", cluster.address)
        text = finish(rerun)
    assert rerun.returncode == 0, text
    assert sorted(row["index"] for row in job_rows(home, job.job_id)) == list(range(ITEMS))
    assert f"{ITEMS - len(saved)} processed in this run" in text


@pytest.mark.slow
def test_actors_no_live_node_can_hold_stop_the_job_at_once(cluster: LocalCluster, tmp_path: Path) -> None:
    config, log = write_job(tmp_path, {"ray": {"concurrency": 1, "resources": {"absent": 1}}})
    driver = tidal_map(config, tmp_path / "ray", "--address", cluster.address)
    text = finish(driver, 120)
    assert driver.returncode == 2, text
    assert ("engine.ray: no live node of the Ray cluster can hold a worker, which asks for 1 CPU, 1 absent:"
            " none has 'absent'") in text
    assert not log.exists()


def test_custom_resources_are_checked_with_the_config() -> None:
    data: dict[str, object] = {"source": {"tidal.sources.Range": {"n": 4}},
                               "processor": {"tidal.processors.NoOp": {}}}
    engine = parse_job(data | {"engine": {"ray": {"resources": {"side": 1}}}}, "job.hjson").build_engine()
    assert (type(engine), engine.resources, engine.describe()["resources"]) == (RayEngine, {"side": 1.0},
                                                                                 {"side": 1.0})
    with pytest.raises(ConfigError, match=r"engine.ray: resources: give CPU as num_cpus"):
        parse_job(data | {"engine": {"ray": {"resources": {"CPU": 2}}}}, "job.hjson").build_engine()
    with pytest.raises(ConfigError, match=r"engine\.ray\.resources"):
        parse_job(data | {"engine": {"ray": {"resources": {"side": "one"}}}}, "job.hjson")
