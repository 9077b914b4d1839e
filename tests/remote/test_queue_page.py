"""The dashboard's queue page and ``tidal queue ls`` over a store, without a cluster."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from liveserver import serving, sqlite_store
from tidal.tracking.server.app import create_app


def test_the_queue_page_and_queue_ls_show_why_a_run_waits(tmp_path: Path) -> None:
    home = tmp_path / "home"
    store = sqlite_store(home)
    store.create_run({"id": "waits4gpu", "project": "p", "name": "train", "kind": "remote", "status": "queued",
                      "started_at": time.time()})
    store.enqueue({"run_id": "waits4gpu", "priority": 3, "status": "waiting", "address": "http://head:8265",
                   "spec": {"script": "train.py", "gpus": 1.0, "cpus": 1.0}, "created_at": time.time(),
                   "reason": "needs 1 GPU, cluster has 0 free"})
    with serving(create_app(store)) as live:
        page = httpx.get(f"{live.url}/queue").text
    assert "needs 1 GPU, cluster has 0 free" in page and "1 GPU, 1 CPU" in page and "/runs/waits4gpu" in page
    listed = subprocess.run([sys.executable, "-m", "tidal", "queue", "ls"], env=os.environ | {"TIDAL_HOME": str(home)},
                            capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert "waits4gp" in listed.stdout and "needs 1 GPU, cluster has 0 free" in listed.stdout
    store.close()
