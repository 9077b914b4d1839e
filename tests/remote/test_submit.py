"""Remote runs against a real Ray head (tests/remote/conftest.py) and a real tidal server: direct
submission without a server, the queue in front of Ray, cancel, lost jobs, execute_remotely."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from liveserver import TOKEN, LiveServer, sqlite_store, start_server, wait_for
from tidal.errors import ConfigError
from tidal.remote.cluster import RayCluster
from tidal.remote.follow import follow
from tidal.remote.handover import reconcile
from tidal.remote.queue import cancel
from tidal.remote.submit import submit
from tidal.tracking.httpstore import HTTPStore
from tidal.tracking.server.app import create_app
from tidal.tracking.store import Store

TRAIN = """
import sys
import numpy as np
import tidal

run = tidal.init(project="remote-tests")
run.log_params({"args": sys.argv[1:]})
run.log_metric("loss", 0.25, step=1)
run.log_image("sample", np.full((8, 8, 3), 200, dtype=np.uint8), step=1)
print("trained with", sys.argv[1:])
"""
HELLO = "import sys\nprint('hello from the cluster', sys.argv[1:])\n"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "train.py").write_text(TRAIN)
    (folder / "hello.py").write_text(HELLO)
    (folder / "big.bin").write_bytes(b"\0" * 4096)
    (folder / ".gitignore").write_text("*.bin\n")
    return folder


@pytest.fixture
def client(server: LiveServer) -> Iterator[HTTPStore]:
    store = HTTPStore(server.url, token=TOKEN)
    yield store
    store.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """The embedded store: no server, so runs go to Ray directly."""
    opened = sqlite_store(tmp_path / "home")
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A tidal server with its dispatcher (lifespan on)."""
    backend = sqlite_store(tmp_path_factory.mktemp("server-home"))
    live = start_server(create_app(backend, token=TOKEN), lifespan="on")
    yield live
    live.stop()
    backend.close()


def test_without_a_server_a_run_goes_to_ray_at_once_and_ends_in_the_store(ray_head: str, project: Path,
                                                                          store: Store) -> None:
    submission = submit("hello.py", ["a", "b c"], address=ray_head, cpus=0.5, folder=project, store=store)
    assert submission.status == "submitted"
    seen: list[str] = []
    run = follow(store, submission.run_id, seen.append, poll_seconds=0.3)
    assert run["status"] == "completed" and run["stats"] == {"exit_code": 0}, run
    assert "hello from the cluster ['a', 'b c']" in "".join(seen)
    console = "".join(chunk["text"] for chunk in store.logs(submission.run_id))
    assert "hello from the cluster" in console  # the script logged nothing itself: Ray's log is kept
    assert (run["kind"], run["argv"], run["config"]["remote"]["cpus"]) == ("remote", ["hello.py", "a", "b c"], 0.5)
    assert [artifact["name"] for artifact in store.artifacts(submission.run_id)] == ["code.zip"]
    assert store.queue_entry(submission.run_id)["status"] == "done"


def test_the_queue_holds_what_the_cluster_cannot_run_and_hands_over_what_fits(
        ray_head: str, client: HTTPStore, project: Path) -> None:
    needs_gpu = submit("train.py", ["--big"], address=ray_head, gpus=1, folder=project, store=client, priority=9)
    fits = submit("train.py", ["--lr", "0.1"], address=ray_head, cpus=0.5, folder=project, store=client)
    assert (needs_gpu.status, fits.status) == ("waiting", "waiting")
    wait_for(lambda: client.queue_entry(needs_gpu.run_id).get("reason") == "needs 1 GPU, cluster has 0 free", 30,
             "the GPU run never said why it waits")
    run = follow(client, fits.run_id, lambda text: None, poll_seconds=0.3)
    assert run["status"] == "completed", run
    # the script's tidal.init() attached to the submitted run through the server (its token injected)
    assert run["params"] == {"args": ["--lr", "0.1"]}
    assert client.metrics(fits.run_id)["loss"][0][:2] == (1, 0.25)
    assert [image["key"] for image in client.images(fits.run_id)] == ["sample"]
    assert client.queue_entry(needs_gpu.run_id)["status"] == "waiting"  # still, visibly, with its reason
    assert cancel(client, needs_gpu.run_id) == "cancelled"
    assert client.get_run(needs_gpu.run_id)["status"] == "interrupted"
    assert client.queue_entry(fits.run_id)["status"] == "done"  # nothing else in the queue changed


def test_a_run_whose_ray_job_vanished_is_lost(ray_head: str, store: Store) -> None:
    store.create_run({"id": "vanished1", "project": "p", "name": "x", "kind": "remote", "status": "running",
                      "started_at": time.time(), "heartbeat_at": time.time()})
    store.enqueue({"run_id": "vanished1", "status": "running", "address": ray_head, "spec": {"script": "x.py"},
                   "created_at": time.time(), "ray_job_id": "tidal-vanished1-1"})
    assert reconcile(store, store.queue_entry("vanished1"), RayCluster(ray_head)) == "lost"
    run = store.get_run("vanished1")
    assert run["status"] == "lost" and "has no job tidal-vanished1-1" in run["error"]


def test_an_unreachable_ray_is_refused_before_anything_is_recorded(project: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    done = subprocess.run([sys.executable, "-m", "tidal", "submit", "hello.py", "--address", "http://127.0.0.1:9"],
                          cwd=project, env=os.environ | {"TIDAL_HOME": str(home)}, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2, done.stderr
    assert "cannot reach Ray's Jobs API at 'http://127.0.0.1:9'" in done.stderr
    recorded = sqlite_store(home)
    assert recorded.list_runs() == []  # nothing was recorded
    recorded.close()
    with pytest.raises(ConfigError, match="not ray://head:10001"):
        RayCluster("ray://head:10001")


REMOTE_FROM_INSIDE = """
import tidal

run = tidal.init(project="remote-tests", name="inside")
run.execute_remotely(address={address!r}, cpus=0.5)
run.log_metric("where", 1.0, step=0)
print("running on the cluster")
"""


def test_execute_remotely_ends_the_local_process_and_the_same_run_goes_on_in_the_cluster(
        ray_head: str, server: LiveServer, client: HTTPStore, project: Path) -> None:
    (project / "inside.py").write_text(REMOTE_FROM_INSIDE.format(address=ray_head))
    environment = os.environ | {"TIDAL_TRACKING_URI": server.url, "TIDAL_TOKEN": TOKEN}
    local = subprocess.run([sys.executable, "inside.py"], cwd=project, env=environment, capture_output=True,
                           text=True, timeout=120)
    assert local.returncode == 0, local.stderr
    assert "running on the cluster" not in local.stdout  # the local process stopped at execute_remotely
    [run_id] = [line.split()[2] for line in local.stderr.splitlines() if line.startswith("tidal: run ")]
    run = follow(client, run_id, lambda text: None, poll_seconds=0.3)
    assert (run["status"], run["name"], run["kind"]) == ("completed", "inside", "remote"), run
    assert client.metrics(run_id)["where"][0][:2] == (0, 1.0)
    assert "running on the cluster" in "".join(chunk["text"] for chunk in client.logs(run_id))


@pytest.mark.slow
def test_requirements_that_do_not_install_fail_the_run_with_pips_message(ray_head: str, project: Path,
                                                                          store: Store) -> None:
    requirements = project / "requirements.txt"
    requirements.write_text("tidal-no-such-package-0e1f==0.0.1\n")
    submission = submit("hello.py", [], address=ray_head, cpus=0.5, folder=project, store=store,
                        requirements=requirements)
    run = follow(store, submission.run_id, lambda text: None, poll_seconds=0.5)
    assert run["status"] == "failed"
    assert "tidal-no-such-package-0e1f" in run["error"] and "pip" in run["error"].lower(), run["error"]
    assert store.queue_entry(submission.run_id)["status"] == "failed"
