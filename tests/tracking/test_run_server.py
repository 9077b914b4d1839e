"""Runs logging to a real tidal server (over SQLite and over PostgreSQL): nothing a run logs is
lost to one refused point, to a burst, or to a server with a smaller request limit."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from liveserver import TOKEN, LiveServer, postgres_store, sqlite_store, start_server
from pgserver import needs_postgres
from tidal.errors import UsageError
from tidal.tracking.delivery import Send, deliver
from tidal.tracking.httpstore import HTTPStore
from tidal.tracking.run import Run
from tidal.tracking.server.app import create_app
from tidal.tracking.store import Batch, Store


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=needs_postgres)])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiveServer]:
    """A tidal server over a real store, with the default request limit (16 MiB)."""
    backing = (sqlite_store if request.param == "sqlite" else postgres_store)(tmp_path / "server")
    live = start_server(create_app(backing, token=TOKEN))
    yield live
    live.stop()
    backing.close()


@pytest.fixture
def client(server: LiveServer) -> Iterator[HTTPStore]:
    store = HTTPStore(server.url, token=TOKEN)
    yield store
    store.close()


def run_script(tmp_path: Path, url: str, body: str, **env: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(body))
    variables = os.environ | {"TIDAL_HOME": str(tmp_path / "home"), "TIDAL_TRACKING_URI": url,
                              "TIDAL_TOKEN": TOKEN} | env
    return subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=variables, capture_output=True,
                          text=True, timeout=120)


def the_run(store: Store, project: str) -> dict[str, object]:
    [run] = store.list_runs(project=project)
    return store.get_run(str(run["id"]))


def test_the_issue_repro_a_huge_step_then_100_points_loses_nothing(tmp_path: Path, server: LiveServer,
                                                                  client: HTTPStore) -> None:
    project = f"p{uuid.uuid4().hex[:8]}"
    done = run_script(tmp_path, server.url, f"""
        import tidal
        r = tidal.init(project={project!r})
        r.log_metric('x', 1, step=3_000_000_000)
        [r.log_metric('y', i, step=i) for i in range(100)]
    """)
    assert done.returncode == 0, done.stderr
    run = the_run(client, project)
    metrics = client.metrics(str(run["id"]), ["x", "y"])
    assert [step for step, _, _ in metrics["x"]] == [3_000_000_000]
    assert [value for _, value, _ in metrics["y"]] == [float(i) for i in range(100)]
    assert run["status"] == "completed"


def test_what_no_store_keeps_fails_at_the_call_and_the_rest_is_stored(client: HTTPStore) -> None:
    run = Run(client, project="checks", capture=False)
    with pytest.raises(UsageError, match="does not fit in 64 bits"):
        run.log_metric("x", 1.0, step=2**63)
    with pytest.raises(UsageError, match="at most 250"):
        run.log_metric("k" * 251, 1.0)
    with pytest.raises(UsageError, match="too large for a 64-bit float"):
        run.log_metric("x", 10**400)
    run.log_metric("x", 2.0, step=2**63 - 1)
    run.log_metric("k" * 250, 3.0, step=-(2**63))
    run.finish()
    metrics = client.metrics(run.id)
    assert metrics["x"][0][:2] == (2**63 - 1, 2.0) and metrics["k" * 250][0][:2] == (-(2**63), 3.0)


def test_a_refused_batch_drops_only_its_bad_rows_with_one_warning(client: HTTPStore) -> None:
    run = Run(client, project="refused", capture=False)
    run.finish()
    stamp = time.time()
    rows = [(f"m{i % 3}", i, float(i), stamp) for i in range(200)]
    rows[57] = ("m0", 2**64, 1.0, stamp)  # no store keeps it: 422 from the server
    rows[140] = ("m1", 140, 1.0, -5.0)  # a timestamp before 1970: 422 too
    warnings: list[str] = []
    deliver(client, run.id, Send(Batch(uuid.uuid4().hex, params={"lr": 0.1}, metrics=rows)), warnings.append)
    stored = sum(len(points) for points in client.metrics(run.id).values())
    assert stored == 198 and client.get_run(run.id)["params"] == {"lr": 0.1}
    [warning] = warnings
    assert "refused 2 of the 201 rows" in warning and "metric 'm0' at step 18446744073709551616" in warning


@pytest.mark.slow
def test_a_burst_of_400k_points_is_stored(tmp_path: Path, server: LiveServer, client: HTTPStore) -> None:
    project = f"p{uuid.uuid4().hex[:8]}"
    done = run_script(tmp_path, server.url, f"""
        import tidal
        r = tidal.init(project={project!r}, capture_output=False)
        for i in range(400_000):
            r.log_metric('loss', 1.0 / (i + 1), step=i)
    """)
    assert done.returncode == 0, done.stderr
    run = the_run(client, project)
    points = client.metrics(str(run["id"]), ["loss"])["loss"]
    assert len(points) == 400_000 and [step for step, _, _ in points[:3]] == [0, 1, 2]
    assert "refused" not in done.stderr and "spool" not in done.stderr


def test_a_server_with_a_small_request_limit_takes_everything_but_a_row_larger_than_it(
        tmp_path: Path) -> None:
    backing = sqlite_store(tmp_path / "server")
    live = start_server(create_app(backing, token=TOKEN, max_request_bytes=64 * 1024))
    client = HTTPStore(live.url, token=TOKEN)
    try:
        run = Run(client, project="small", capture=False)
        run.log_params({"notes": "n" * 100_000})  # storable, but not by this server
        for step in range(8_000):  # ~400 kB of JSON: cut into parts under 64 KiB
            run.log_metric("loss", float(step), step=step)
        run.log_text("done\n")
        run.finish()
        assert len(client.metrics(run.id)["loss"]) == 8_000
        assert client.get_run(run.id)["params"] == {}
        assert "done" in "".join(log["text"] for log in client.logs(run.id))
    finally:
        client.close()
        live.stop()
        backing.close()
