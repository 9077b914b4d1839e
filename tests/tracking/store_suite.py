"""Behaviour every Store must have; mixed into one test class per backend."""

from __future__ import annotations

import math
import os
import time
import uuid
from typing import Any

import pytest

from tidal.errors import RunNotFound
from tidal.tracking.store import Batch, Store


def new_run(store: Store, project: str, **fields: Any) -> str:
    run_id = uuid.uuid4().hex[:16]
    store.create_run({"id": run_id, "project": project, "name": fields.pop("name", "train"), "kind": "script",
                      "status": "running", "started_at": time.time(), "heartbeat_at": time.time(),
                      "host": "elsewhere", "pid": 1, **fields})
    return run_id


class StoreSuite:
    """A class using it defines ``store`` (a fresh Store) and ``project`` (unique per test)."""

    def test_runs_round_trip_with_json_fields(self, store: Store, project: str) -> None:
        run_id = new_run(store, project, config={"model": {"depth": 50}}, git={"commit": "abc"})
        run = store.get_run(run_id)
        assert run["config"] == {"model": {"depth": 50}} and run["git"]["commit"] == "abc"
        store.update_run(run_id, {"status": "completed", "ended_at": time.time()})
        assert store.get_run(run_id)["status"] == "completed"

    def test_batches_apply_once_and_keep_nan_and_inf(self, store: Store, project: str) -> None:
        run_id = new_run(store, project)
        now = time.time()
        batch = Batch("b-1", params={"lr": 0.1, "layers": [1, 2]}, tags={"stage": "val"},
                      metrics=[("loss", 0, 1.5, now), ("loss", 1, math.nan, now), ("loss", 2, math.inf, now)],
                      logs=[("stdout", "epoch 1\n", now)])
        store.log_batch(run_id, batch)
        store.log_batch(run_id, batch)  # a retry of the same batch
        points = store.metrics(run_id)["loss"]
        assert [p[0] for p in points] == [0, 1, 2]
        assert points[0][1] == 1.5 and math.isnan(points[1][1]) and points[2][1] == math.inf
        assert [log["text"] for log in store.logs(run_id)] == ["epoch 1\n"]
        run = store.get_run(run_id)
        assert run["params"] == {"lr": 0.1, "layers": [1, 2]} and run["tags"] == {"stage": "val"}

    def test_list_filters(self, store: Store, project: str) -> None:
        first = new_run(store, project, name="alpha")
        second = new_run(store, project, name="beta")
        store.log_batch(second, Batch("t", tags={"gpu": "a100"}))
        store.update_run(first, {"status": "failed"})
        assert {r["id"] for r in store.list_runs(project=project)} == {first, second}
        assert [r["id"] for r in store.list_runs(project=project, status="failed")] == [first]
        assert [r["id"] for r in store.list_runs(project=project, tag="gpu=a100")] == [second]
        assert [r["id"] for r in store.list_runs(project=project, search="bet")] == [second]
        assert project in store.projects()

    def test_unknown_run(self, store: Store, project: str) -> None:
        with pytest.raises(RunNotFound, match="no run 'nope'"):
            store.get_run("nope")

    def test_a_silent_run_or_a_dead_local_process_is_lost(self, store: Store, project: str) -> None:
        import socket

        silent = new_run(store, project, heartbeat_at=time.time() - 3600, started_at=time.time() - 3600)
        dead_pid = _dead_pid()
        dead = new_run(store, project, host=socket.gethostname(), pid=dead_pid)
        alive = new_run(store, project, host=socket.gethostname(), pid=os.getpid())
        statuses = {r["id"]: r["status"] for r in store.list_runs(project=project)}
        assert statuses == {silent: "lost", dead: "lost", alive: "running"}

    def test_artifacts_round_trip(self, store: Store, project: str, tmp_path: Any) -> None:
        run_id = new_run(store, project)
        model = tmp_path / "model.bin"
        model.write_bytes(os.urandom(100_000))
        record = store.put_artifact(run_id, "weights/model.bin", model)
        assert record["size"] == 100_000
        with store.open_artifact(run_id, "weights/model.bin") as stream:
            assert stream.read() == model.read_bytes()
        assert [a["name"] for a in store.artifacts(run_id)] == ["weights/model.bin"]


def _dead_pid() -> int:
    import subprocess
    import sys

    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid
