"""Real Ray nodes on 127.0.0.1 for this package's tests: a head with its dashboard (Ray Jobs lives
there) and, for the tests that need one, a worker node joined to it, as on a real cluster.

Each node is a ``ray start --block`` in a process group, ports and temp folder of its own, so
stopping it (the whole group) touches no other Ray on the machine.

Example::

    with ray_nodes(head_cpus=0, worker_cpus=2) as cluster:
        cluster.address            # http://127.0.0.1:PORT, the head's dashboard
        cluster.node_ids()         # {"head": "ab12...", "worker": "cd34..."}
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from liveserver import free_port
from tidal.children import stop_group

# RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0: Ray takes "this node" to be 127.0.0.1, not the machine's outward address
RAY_ENVIRONMENT = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0",
                   "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
# `ray start --address=127.0.0.1:PORT` rewrites a loopback address to the machine's outward one (where
# the head does not listen) and refuses to join under RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0: the
# worker's launcher lifts both in its own process only; what it starts stays on 127.0.0.1.
JOIN = ("import sys, ray._private.services as services; services.resolve_ip_for_localhost = lambda host: host; "
        "services.ray_constants.ENABLE_RAY_CLUSTER = True; from ray.scripts.scripts import main; "
        "sys.argv[0] = 'ray'; main()")


@dataclass
class RayNodes:
    address: str  # the head's dashboard: Ray Jobs
    processes: list[subprocess.Popen[bytes]]

    def node_ids(self) -> dict[str, str]:
        """The alive nodes' ids: ``"head"`` and, with a worker node, ``"worker"``."""
        nodes = httpx.get(f"{self.address}/api/v0/nodes", params={"detail": 1}, timeout=30).json()
        return {("head" if node["is_head_node"] else "worker"): node["node_id"]
                for node in nodes["data"]["result"]["result"] if node["state"] == "ALIVE"}


@contextmanager
def ray_nodes(head_cpus: int = 2, worker_cpus: int | None = None) -> Iterator[RayNodes]:
    """A head of ``head_cpus`` CPUs (0 GPUs) and, when ``worker_cpus`` is given, a worker node of that many."""
    temps = [Path(tempfile.mkdtemp(prefix=f"rt{uuid.uuid4().hex[:4]}", dir="/tmp")) for _ in range(2)]  # sockets
    gcs, dashboard = free_port(), free_port()
    cluster = RayNodes(f"http://127.0.0.1:{dashboard}", [])
    try:
        head = _start([str(Path(sys.executable).parent / "ray"), "start", "--head", "--dashboard-host=127.0.0.1",
                       "--include-dashboard=true", f"--num-cpus={head_cpus}", f"--port={gcs}",
                       f"--dashboard-port={dashboard}", f"--ray-client-server-port={free_port()}"], temps[0], cluster)
        _wait(lambda: httpx.get(f"{cluster.address}/api/jobs/", timeout=2).status_code == 200, head, temps[0])
        if worker_cpus is not None:
            worker = _start([sys.executable, "-c", JOIN, "start", f"--address=127.0.0.1:{gcs}",
                             f"--num-cpus={worker_cpus}"], temps[1], cluster)
            _wait(lambda: len(cluster.node_ids()) == 2, worker, temps[1])
        yield cluster
    finally:
        for process in reversed(cluster.processes):
            stop_group(process, term_seconds=5.0)
        for temp in temps:
            shutil.rmtree(temp, ignore_errors=True)


def _start(command: list[str], temp: Path, cluster: RayNodes) -> subprocess.Popen[bytes]:
    ports = [f"{flag}={free_port()}" for flag in ("--dashboard-agent-listen-port", "--dashboard-agent-grpc-port",
                                                  "--runtime-env-agent-port", "--metrics-export-port")]
    command += ["--block", "--node-ip-address=127.0.0.1", "--num-gpus=0", f"--temp-dir={temp}",
                "--disable-usage-stats", *ports]
    # the cluster's python is this one (with tidal installed), as on a real cluster's nodes
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    with (temp / "start.log").open("wb") as output:
        process = subprocess.Popen(command, env=os.environ | RAY_ENVIRONMENT | {"PATH": path},
                                   start_new_session=True, stdout=subprocess.DEVNULL, stderr=output)
    cluster.processes.append(process)
    return process


def _wait(ready: Callable[[], bool], node: subprocess.Popen[bytes], temp: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if node.poll() is not None:
            raise RuntimeError(f"ray start failed: {(temp / 'start.log').read_text()}")
        try:
            if ready():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the Ray node of {temp} was not up within 90 s")
