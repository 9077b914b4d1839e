"""On a cluster shaped like a real one — a head started with ``--num-cpus=0`` and a worker node
with the CPUs — a run submitted through the queue runs on the worker node: Ray schedules the job's
supervisor and driver where its entrypoint resources are (tidal always asks for some), so the
head holds only Ray's bookkeeping however many runs go through."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from ray.job_submission import JobSubmissionClient

from liveserver import TOKEN, sqlite_store, start_server, wait_for
from rayhost import LocalCluster, ray_cluster
from tidal.remote.follow import follow
from tidal.remote.submit import submit
from tidal.tracking.httpstore import HTTPStore
from tidal.tracking.server.app import create_app

WHERE = "import os, time\nprint('driver pid', os.getpid())\ntime.sleep(1)\n"


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    with ray_cluster(head_cpus=0, dashboard=True) as nodes:
        nodes.add_node(cpus=2)
        yield nodes


@pytest.mark.slow
def test_a_queued_run_runs_its_driver_on_the_worker_node_not_the_head(cluster: LocalCluster, tmp_path: Path) -> None:
    (tmp_path / "where.py").write_text(WHERE)
    backend = sqlite_store(tmp_path / "server-home")
    live = start_server(create_app(backend, token=TOKEN), lifespan="on")  # with its dispatcher
    client = HTTPStore(live.url, token=TOKEN)
    try:
        submission = submit("where.py", [], address=cluster.dashboard, cpus=1, folder=tmp_path, store=client)
        assert submission.status == "waiting"  # in tidal's queue first
        run = follow(client, submission.run_id, lambda text: None, poll_seconds=0.3)
        assert run["status"] == "completed", run
        job = JobSubmissionClient(cluster.dashboard).get_job_info(client.queue_entry(submission.run_id)["ray_job_id"])
    finally:
        client.close()
        live.stop()
        backend.close()
    nodes = cluster.node_ids()
    assert set(nodes) == {"head", "worker"}
    assert job.driver_node_id == nodes["worker"] != nodes["head"], (job.driver_node_id, nodes)


SLEEPER = "import time\nprint('started', flush=True)\ntime.sleep(600)\n"


@pytest.mark.slow
def test_a_run_whose_node_dies_fails_saying_so_and_the_queue_goes_on(cluster: LocalCluster, tmp_path: Path) -> None:
    """The node running a run's driver dies (its machine is gone): the run ends failed with Ray's reason
    within a minute, not running forever; a run queued behind it starts once a node has the CPUs again.
    (Last in this module: it kills the module's worker node and adds another.)"""
    (tmp_path / "sleeper.py").write_text(SLEEPER)
    (tmp_path / "where.py").write_text(WHERE)
    backend = sqlite_store(tmp_path / "server-home")
    live = start_server(create_app(backend, token=TOKEN), lifespan="on")
    client = HTTPStore(live.url, token=TOKEN)
    try:
        doomed = submit("sleeper.py", [], address=cluster.dashboard, cpus=2, folder=tmp_path, store=client)
        wait_for(lambda: client.queue_entry(doomed.run_id)["status"] == "running", 120, "the first run did not start")
        behind = submit("where.py", [], address=cluster.dashboard, cpus=2, folder=tmp_path, store=client)
        [worker] = cluster.nodes
        worker.kill()
        wait_for(lambda: client.get_run(doomed.run_id)["status"] not in ("queued", "running"), 180,
                 "the run whose node died is still running")
        ended = client.get_run(doomed.run_id)
        assert ended["status"] == "failed", ended
        assert "node" in ended["error"] and "died" in ended["error"], ended["error"]  # Ray's reason, kept
        entry = client.queue_entry(doomed.run_id)
        assert entry["status"] == "failed", entry
        assert client.queue_entry(behind.run_id)["status"] == "waiting"  # no node has 2 CPUs now
        cluster.add_node(cpus=2)
        wait_for(lambda: client.get_run(behind.run_id)["status"] not in ("queued", "running"), 180,
                 "the run queued behind did not end")
        assert client.get_run(behind.run_id)["status"] == "completed", client.get_run(behind.run_id)
    finally:
        client.close()
        live.stop()
        backend.close()
