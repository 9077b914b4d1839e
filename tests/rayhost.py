"""Local Rays for the tests (engines, serving, training): reachable only from this machine.

``local_ray(cpus)``: one Ray started in the test process (``ray.init``). ``ray_cluster(head_cpus)``:
a cluster of real nodes on 127.0.0.1, each a ``ray start --block`` in a session of its own (ports
and temp folder of its own too), so a test can kill one node (``node.kill()``: SIGKILL to its
raylet, agents and workers at once) and stopping the cluster touches no other Ray on the machine::

    with ray_cluster(head_cpus=1) as cluster:
        side = cluster.add_node(cpus=2, resources={"side": 2})
        ...  # a driver started with RAY_ENVIRONMENT and --address cluster.address
        side.kill()

With ``dashboard=True`` the head runs Ray's dashboard, where Ray Jobs lives: ``cluster.dashboard``
is its address (http://127.0.0.1:PORT) and ``cluster.node_ids()`` names the alive nodes.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx
import pytest

from liveserver import free_port
from tidal.children import die_with_parent

# no token (Ray 2.60 would write one to ~/.ray), no usage report; "0" keeps 127.0.0.1 as it is
# (Ray otherwise swaps a loopback address for the machine's outward one, where nothing listens)
RAY_ENVIRONMENT = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0",
                   "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
# `ray start --address=127.0.0.1:PORT` rewrites a loopback address to the machine's outward one (where
# the head does not listen) and refuses to join under RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0: the joining
# node's launcher lifts both in its own process only, so what it starts (agents, job supervisors and
# drivers) keeps the "0" and stays on 127.0.0.1.
JOINING_NODE = ("import sys, ray._private.services as services; services.resolve_ip_for_localhost = lambda host: host;"
                " services.ray_constants.ENABLE_RAY_CLUSTER = True; from ray.scripts.scripts import main;"
                " sys.argv[0] = 'ray'; main()")
START_SECONDS = 120


@contextmanager
def local_ray(cpus: int = 2, **options: object) -> Iterator[str]:
    """A new Ray on 127.0.0.1 of ``cpus`` CPUs for the block (address "local": never another Ray
    running on this machine); its GCS address, for drivers in other processes."""
    ray = pytest.importorskip("ray", reason="these tests need Ray: pip install -e '.[ray]'")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in RAY_ENVIRONMENT.items():
            patch.setenv(name, value)
        context = ray.init(address="local", _node_ip_address="127.0.0.1", num_cpus=cpus, include_dashboard=False,
                           logging_level="ERROR", configure_logging=False, **options)
        try:
            yield context.address_info["gcs_address"]
        finally:
            ray.shutdown()


class RayNode:
    """One node of a :func:`ray_cluster`: its ``ray start --block``, leader of the node's session."""

    def __init__(self, arguments: list[str], joining: bool, environment: dict[str, str] | None = None) -> None:
        self.temp = Path(tempfile.mkdtemp(prefix=f"rn{uuid.uuid4().hex[:4]}", dir="/tmp"))  # sockets: short paths
        binaries = Path(sys.executable).parent  # every node's python is this one (with tidal), as on a real cluster
        launcher = [sys.executable, "-c", JOINING_NODE] if joining else [str(binaries / "ray")]
        ports = {"--node-manager-port": free_port(), "--object-manager-port": free_port(),
                 "--dashboard-agent-listen-port": free_port(), "--dashboard-agent-grpc-port": free_port(),
                 "--runtime-env-agent-port": free_port(), "--metrics-export-port": free_port()}
        environment = (os.environ | RAY_ENVIRONMENT | (environment or {})
                       | {"PATH": f"{binaries}{os.pathsep}{os.environ.get('PATH', '')}"})
        self.log = self.temp / "start.log"
        with self.log.open("wb") as output:
            self.process = subprocess.Popen(
                [*launcher, "start", "--block", "--node-ip-address=127.0.0.1", "--disable-usage-stats", "--num-gpus=0",
                 "--object-store-memory=100000000", f"--temp-dir={self.temp}", *arguments,
                 *(f"{flag}={port}" for flag, port in ports.items())],
                env=environment, start_new_session=True, stdout=output, stderr=subprocess.STDOUT,
                # a test run killed (a timeout, Ctrl-C twice) leaves no cluster behind: `ray start --block`
                # stops its node's processes when it gets SIGTERM
                preexec_fn=lambda: die_with_parent(signal.SIGTERM))
        self._wait_started()

    @property
    def session(self) -> int:
        """The node's session: every process of the node is in it (``os.getsid`` of its workers)."""
        return self.process.pid

    def _wait_started(self) -> None:
        """Until the node is registered with the cluster (`ray start` says so once the GCS lists it)."""
        deadline = time.monotonic() + START_SECONDS
        while "Ray runtime started" not in self.log.read_text(errors="replace"):
            if not _session_members(self.session) or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"ray start failed or hung: {self.log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.2)

    def kill(self) -> None:
        """The node dies at once, as with its machine: SIGKILL to every process of its session (the
        raylet and agents in the node's process group, the workers each in a group of their own)."""
        _end_session(self.process, polite=False)

    def stop(self) -> None:
        """TERM to the node's process group, then KILL to whatever is left of its session; its temp
        folder removed."""
        _end_session(self.process, polite=True)
        shutil.rmtree(self.temp, ignore_errors=True)


class LocalCluster:
    """A head on 127.0.0.1 and the nodes added to it; ``address`` is the head's GCS (``host:port``),
    ``dashboard`` its dashboard's URL (Ray Jobs) when it runs one."""

    def __init__(self, head_cpus: int, dashboard: bool = False, environment: dict[str, str] | None = None) -> None:
        port = free_port()
        self.address = f"127.0.0.1:{port}"
        self._dashboard: str | None = None
        options = ["--include-dashboard=false"]
        if dashboard:
            dashboard_port = free_port()
            self._dashboard = f"http://127.0.0.1:{dashboard_port}"
            options = ["--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard_port}"]
        self.head = RayNode(["--head", f"--port={port}", f"--num-cpus={head_cpus}", *options,
                             f"--ray-client-server-port={free_port()}"], joining=False,
                            environment=environment)
        self.nodes: list[RayNode] = []
        if dashboard:
            self._wait_for_jobs_api()

    @property
    def dashboard(self) -> str:
        if self._dashboard is None:
            raise RuntimeError("this cluster's head runs no dashboard: ray_cluster(..., dashboard=True)")
        return self._dashboard

    def _wait_for_jobs_api(self) -> None:
        """The dashboard starts after the node is registered; Ray Jobs answers once it is up."""
        deadline = time.monotonic() + START_SECONDS
        while True:
            try:
                if httpx.get(f"{self.dashboard}/api/jobs/", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"Ray's dashboard did not answer within {START_SECONDS} s: "
                                   f"{self.head.log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.5)

    def node_ids(self) -> dict[str, str]:
        """The alive nodes' ids, read from the dashboard: ``"head"`` and the others as ``"worker"``."""
        nodes = httpx.get(f"{self.dashboard}/api/v0/nodes", params={"detail": 1}, timeout=30).json()
        return {("head" if node["is_head_node"] else "worker"): node["node_id"]
                for node in nodes["data"]["result"]["result"] if node["state"] == "ALIVE"}

    def add_node(self, cpus: int, resources: dict[str, float] | None = None) -> RayNode:
        """A node of ``cpus`` CPUs (and custom ``resources``) joined to the head; back once it is registered."""
        node = RayNode([f"--address={self.address}", f"--num-cpus={cpus}",
                        f"--resources={json.dumps(resources or {})}"], joining=True)
        self.nodes.append(node)
        return node

    def stop(self) -> None:
        for node in [*self.nodes, self.head]:
            node.stop()


@contextmanager
def ray_cluster(head_cpus: int = 1, dashboard: bool = False,
                environment: dict[str, str] | None = None) -> Iterator[LocalCluster]:
    """A local multi-node Ray cluster for the block: a head of ``head_cpus`` CPUs (with Ray's dashboard
    when asked; ``environment`` for the head's processes), nodes added with ``add_node``; every node
    stopped (its session) at the end."""
    pytest.importorskip("ray", reason="these tests need Ray: pip install -e '.[ray]'")
    cluster = LocalCluster(head_cpus, dashboard, environment)
    try:
        yield cluster
    finally:
        cluster.stop()


def _end_session(leader: subprocess.Popen[bytes], polite: bool) -> None:
    """End every process of the session ``leader`` leads (polite: TERM to its process group first,
    5 s to exit), then reap the leader. Reaped last: until then the session's id (its pid) cannot
    be reused, so no process of any other session is ever signalled."""
    if leader.returncode is not None:
        return
    if polite:
        with suppress(ProcessLookupError):
            os.killpg(leader.pid, signal.SIGTERM)
        _wait_empty(leader.pid, 5.0)
    for pid in _session_members(leader.pid):
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    _wait_empty(leader.pid, 10.0)
    leader.wait(timeout=10)


def _wait_empty(session: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while _session_members(session) and time.monotonic() < deadline:
        time.sleep(0.1)


def _session_members(session: int) -> list[int]:
    """The processes of ``session`` still running (zombies left out)."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:  # ended while we looked
            continue
        state, _parent, _group, owner = stat.rpartition(")")[2].split()[:4]
        if state != "Z" and int(owner) == session:
            members.append(int(entry))
    return members
