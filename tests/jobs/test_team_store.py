"""A job run against a team's tidal server (over a real PostgreSQL): followed live, listed and
exported from another TIDAL_HOME, killed with SIGKILL and resumed with every item exactly once."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from liveserver import TOKEN, postgres_store, start_server, wait_for
from pgserver import needs_postgres
from tidal.config.job import load_config
from tidal.engines.inline import InlineEngine
from tidal.errors import JobNotFound
from tidal.jobs.runner import run_job
from tidal.tracking.server.app import create_app
from tidal.tracking.store import Store

ITEMS = 120


def slow_job(folder: Path) -> Path:
    """120 items at 50 ms each on one worker: about 6 s, long enough to watch and to kill."""
    (folder / "slowsquares.py").write_text(
        "import time\n"
        "def square(i, salt=''):\n"
        "    time.sleep(0.05)\n"
        "    return {'square': i * i, 'half': i / 2}\n")
    config = folder / "job.json"
    config.write_text(json.dumps({
        "source": {"tidal.sources.Range": {"n": ITEMS, "per_partition": 10}},
        # a salt of its own: the job's id is new on every run of this test, on a shared database
        "processor": {"slowsquares.square": {"salt": uuid.uuid4().hex}},
        "imports": ["slowsquares"],
        "engine": {"local": {"workers": 1}},
    }))
    return config


def tidal(home: Path, url: str, *args: str, cwd: Path) -> subprocess.Popen[bytes]:
    env = os.environ | {"TIDAL_HOME": str(home), "TIDAL_TRACKING_URI": url, "TIDAL_TOKEN": TOKEN,
                        "PYTHONPATH": str(cwd)}
    return subprocess.Popen([sys.executable, "-m", "tidal", *args], env=env, cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def job_seen(store: Store, job_id: str) -> dict[str, Any] | None:
    try:
        return store.get_job(job_id)
    except JobNotFound:
        return None


def live_stats(store: Store, job_id: str) -> dict[str, Any] | None:
    job = job_seen(store, job_id)
    stats = (job["runs"][0].get("stats") or {}) if job and job["runs"] else {}
    return stats if stats.get("completed") else None


@needs_postgres
@pytest.mark.slow
def test_a_job_on_a_team_server_is_live_shared_and_resumed_exactly_once(tmp_path: Path) -> None:
    config = slow_job(tmp_path)
    sys.path.insert(0, str(tmp_path))
    try:
        [job] = load_config(config)
        reference = run_job(job, state_home=tmp_path / "reference", engine=InlineEngine())
    finally:
        sys.path.remove(str(tmp_path))
    assert reference.done == ITEMS
    backing = postgres_store(tmp_path / "server")
    server = start_server(create_app(backing, token=TOKEN))
    try:
        laptop = tmp_path / "laptop"
        first = tidal(laptop, server.url, "map", str(config), "--quiet", cwd=tmp_path)
        stats = wait_for(lambda: live_stats(backing, job.job_id), 60, "no live progress on the server")
        assert first.poll() is None and 0 < stats["completed"] < ITEMS  # progress while it runs
        first.send_signal(signal.SIGKILL)
        first.communicate()

        second = tidal(laptop, server.url, "map", str(config), "--quiet", cwd=tmp_path)
        _, stderr = second.communicate(timeout=120)
        assert second.returncode == 0, stderr.decode()
        resumed = int(re.search(rb"(\d+) resumed", stderr).group(1))  # type: ignore[union-attr]
        processed = int(re.search(rb"(\d+) processed in this run", stderr).group(1))  # type: ignore[union-attr]
        assert 0 < resumed < ITEMS and resumed + processed == ITEMS  # the rest, and only the rest

        elsewhere = tmp_path / "another-machine"
        listed = tidal(elsewhere, server.url, "jobs", "ls", "--json", cwd=tmp_path)
        out, err = listed.communicate(timeout=60)
        assert listed.returncode == 0, err.decode()
        [row] = [j for j in json.loads(out) if j["id"] == job.job_id]
        assert (row["status"], row["done"], row["failed"], row["total_items"]) == ("completed", ITEMS, 0, ITEMS)

        exported = tmp_path / "exported.jsonl"
        export = tidal(elsewhere, server.url, "results", "export", job.job_id[:8], "-f", "jsonl",
                       "-o", str(exported), cwd=tmp_path)
        _, err = export.communicate(timeout=60)
        assert export.returncode == 0, err.decode()
        assert not (elsewhere / "tidal.db").exists()  # read from the server, not a local store
        got = [json.loads(line) for line in exported.read_text().splitlines()]
        from jobrows import job_rows

        assert got == job_rows(tmp_path / "reference", job.job_id)  # key for key, value for value

        runs = backing.get_job(job.job_id)["runs"]
        assert sorted(run["status"] for run in runs) == ["completed", "lost"]
        assert {run["project"] for run in runs} == {"jobs"}
        headers = {"Authorization": f"Bearer {TOKEN}"}
        page = httpx.get(f"{server.url}/jobs/{job.job_id}", headers=headers)
        assert page.status_code == 200 and job.job_id in page.text and "completed" in page.text
        assert job.job_id in httpx.get(f"{server.url}/jobs", headers=headers).text
    finally:
        server.stop()
        backing.close()
