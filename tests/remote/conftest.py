"""A real Ray head with its dashboard (Ray Jobs lives there) on 127.0.0.1, for this package's tests.

``ray start --head --block`` runs in a process group of its own, on ports and a temp folder of its
own, so that stopping it (the whole group) touches no other Ray on the machine.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from liveserver import free_port

pytest.importorskip("ray.job_submission", reason="remote runs need Ray's job client: pip install -e '.[ray]'")

RAY_ENVIRONMENT = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


@pytest.fixture(scope="package")
def ray_head() -> Iterator[str]:
    """The dashboard address (http://127.0.0.1:PORT) of a 2-CPU, 0-GPU Ray head."""
    temp = Path(tempfile.mkdtemp(prefix=f"rt{uuid.uuid4().hex[:4]}", dir="/tmp"))  # sockets: short paths
    dashboard = free_port()
    ports = {"--port": free_port(), "--dashboard-port": dashboard, "--ray-client-server-port": free_port(),
             "--dashboard-agent-listen-port": free_port(), "--dashboard-agent-grpc-port": free_port(),
             "--runtime-env-agent-port": free_port(), "--metrics-export-port": free_port()}
    command = [str(Path(sys.executable).parent / "ray"), "start", "--head", "--block", "--node-ip-address=127.0.0.1",
               "--dashboard-host=127.0.0.1", "--include-dashboard=true", "--num-cpus=2", "--num-gpus=0",
               f"--temp-dir={temp}", "--disable-usage-stats", *(f"{flag}={port}" for flag, port in ports.items())]
    # the cluster's python is this one (with tidal installed), as on a real cluster's nodes
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    log = temp / "start.log"
    with log.open("wb") as output:
        head = subprocess.Popen(command, env=os.environ | RAY_ENVIRONMENT | {"PATH": path}, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=output)
    address = f"http://127.0.0.1:{dashboard}"
    try:
        _wait_for_jobs_api(address, head, log)
        yield address
    finally:
        _stop_group(head)
        shutil.rmtree(temp, ignore_errors=True)


def _wait_for_jobs_api(address: str, head: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if head.poll() is not None:
            raise RuntimeError(f"ray start failed: {log.read_text()}")
        try:
            if httpx.get(f"{address}/api/jobs/", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"Ray's Jobs API did not answer at {address} within 90 s")


def _stop_group(head: subprocess.Popen[bytes]) -> None:
    """The head and everything it started (its own process group), TERM then KILL."""
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        try:
            os.killpg(head.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and _group_alive(head.pid):
            head.poll()
            time.sleep(0.2)
    head.wait(timeout=5)


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True
