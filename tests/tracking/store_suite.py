"""Behaviour every Store must have; mixed into one test class per backend."""

from __future__ import annotations

import math
import os
import time
import uuid
from typing import Any

import pytest

from tidal.errors import ArtifactNotFound, RunNotFound, UsageError
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


class RunQuerySuite:
    """Finding, filtering, sorting, paging and managing runs; sampled metric series."""

    def test_a_unique_prefix_finds_a_run(self, store: Store, project: str) -> None:
        run_id = new_run(store, project)
        assert store.find_run(run_id[:8]) == run_id and store.find_run(run_id) == run_id
        with pytest.raises(RunNotFound, match="no run 'zz-none'"):
            store.find_run("zz-none")

    def test_an_ambiguous_prefix_asks_for_more(self, store: Store, project: str) -> None:
        prefix = uuid.uuid4().hex[:6]
        for suffix in ("a", "b"):
            store.create_run({"id": prefix + suffix, "project": project, "name": "x", "kind": "script",
                              "status": "completed", "started_at": time.time()})
        with pytest.raises(UsageError, match="matches 2 runs"):
            store.find_run(prefix)

    def test_where_sort_and_pages(self, store: Store, project: str) -> None:
        made = {}
        for index, (accuracy, optimizer) in enumerate([(0.95, "adam"), (0.85, "sgd"), (0.97, "sgd")]):
            run_id = new_run(store, project, name=f"r{index}")
            store.log_batch(run_id, Batch(f"w{index}", params={"lr": 0.1 * (index + 1), "optimizer": optimizer},
                                          tags={"team": "vision"}, metrics=[
                                              ("acc", 0, 0.1, time.time()), ("acc", 5, accuracy, time.time())]))
            made[accuracy] = run_id

        def ids(**query: Any) -> list[str]:
            return [run["id"] for run in store.list_runs(project=project, **query)]

        assert ids(where="metrics.acc > 0.9", sort="-metrics.acc") == [made[0.97], made[0.95]]
        assert ids(where="params.optimizer = 'sgd' and params.lr >= 0.25") == [made[0.97]]
        assert ids(where="tags.team = vision", sort="metrics.acc") == [made[0.85], made[0.95], made[0.97]]
        assert ids(sort="name", limit=2) + ids(sort="name", limit=2, offset=2) == [made[0.95], made[0.85], made[0.97]]
        with pytest.raises(UsageError, match=r"unknown field 'metric\.acc'"):
            store.list_runs(where="metric.acc > 1")

    def test_an_unknown_status_names_the_valid_ones(self, store: Store, project: str) -> None:
        with pytest.raises(UsageError, match="unknown run status 'bogus'; use one of: running, completed"):
            store.list_runs(status="bogus")

    def test_rename_note_archive_and_delete(self, store: Store, project: str, tmp_path: Any) -> None:
        kept, archived = new_run(store, project), new_run(store, project)
        store.update_run(kept, {"name": "renamed", "notes": "the good one"})
        store.update_run(archived, {"archived_at": time.time()})
        assert [r["id"] for r in store.list_runs(project=project)] == [kept]
        assert [r["id"] for r in store.list_runs(project=project, archived="only")] == [archived]
        assert store.get_run(kept)["name"] == "renamed" and store.get_run(kept)["notes"] == "the good one"
        store.log_batch(archived, Batch("d", metrics=[("loss", 1, 0.5, time.time())]))
        store.put_artifact(archived, "model.bin", b"weights")
        store.delete_run(archived)
        with pytest.raises(RunNotFound):
            store.get_run(archived)
        with pytest.raises((ArtifactNotFound, RunNotFound)):  # over HTTP: the run itself is gone
            store.open_artifact(archived, "model.bin")
        assert store.list_runs(project=project, archived="include") != [] and store.metrics(kept) == {}

    def test_a_lost_run_ends_at_its_last_heartbeat(self, store: Store, project: str) -> None:
        beat = time.time() - 3600
        run_id = new_run(store, project, heartbeat_at=beat, started_at=beat - 60)
        run = store.get_run(run_id)
        assert run["status"] == "lost" and run["ended_at"] == pytest.approx(beat)

    def test_a_long_series_is_sampled_keeping_its_spikes(self, store: Store, project: str) -> None:
        run_id = new_run(store, project)
        now = time.time()
        points = [("loss", step, 1.0 / (step + 1), now + step) for step in range(5000)]
        points[1234] = ("loss", 1234, 50.0, now + 1234)
        points[4321] = ("loss", 4321, math.nan, now + 4321)
        store.log_batch(run_id, Batch("s", metrics=[*points, ("short", 1, 2.0, now)]))
        sample = store.sampled_metrics(run_id, buckets=100)
        loss = sample["metrics"]["loss"]
        assert sample["sampled"] == ["loss"] and 100 <= len(loss) <= 300
        assert max(value for _, value, _ in loss if not math.isnan(value)) == 50.0
        assert any(math.isnan(value) for _, value, _ in loss)
        assert sample["metrics"]["short"] == [(1, 2.0, now)]
        zoom = store.sampled_metrics(run_id, buckets=100, keys=["loss"], start=1200, end=1299)
        assert [step for step, _, _ in zoom["metrics"]["loss"]] == list(range(1200, 1300))
        store.log_batch(run_id, Batch("t", metrics=[("new", 0, 1.0, now), ("loss", 5000, 0.1, now)]))
        fresh = store.sampled_metrics(run_id, buckets=100, after=sample["last"])
        assert fresh["metrics"] == {"new": [(0, 1.0, now)], "loss": [(5000, 0.1, now)]}
        assert fresh["last"] > sample["last"]
        assert store.sampled_metrics(run_id, after=fresh["last"])["metrics"] == {}


class QueueSuite:
    """The queue of runs submitted to Ray (tidal.remote): order, compare-and-set, clear misses."""

    def test_queue_orders_by_priority_and_changes_only_from_expected_statuses(self, store: Store,
                                                                             project: str) -> None:
        low, high = new_run(store, project, status="queued"), new_run(store, project, status="queued")
        for run_id, priority in ((low, -1), (high, 5)):
            store.enqueue({"run_id": run_id, "priority": priority, "status": "waiting", "address": "http://head:8265",
                           "spec": {"script": "train.py", "gpus": 1.0}, "created_at": time.time()})
        mine = [e for e in store.queue_entries(["waiting"]) if e["run_id"] in (low, high)]
        assert [e["run_id"] for e in mine] == [high, low] and mine[0]["spec"] == {"script": "train.py", "gpus": 1.0}
        assert store.update_queue_entry(high, {"status": "submitted", "reason": None}, only_if=["waiting"])
        assert not store.update_queue_entry(high, {"status": "cancelled"}, only_if=["waiting"])  # lost the race
        assert store.update_queue_entry(low, {"reason": "needs 1 GPU, cluster has 0 free"})
        assert (store.queue_entry(high)["status"], store.queue_entry(low)["reason"]) == (
            "submitted", "needs 1 GPU, cluster has 0 free")
        with pytest.raises(RunNotFound, match="was never submitted to Ray"):
            store.queue_entry("never-submitted")
        with pytest.raises(RunNotFound):
            store.update_queue_entry("never-submitted", {"reason": "x"})
        with pytest.raises(UsageError, match="queued already"):
            store.enqueue({"run_id": low, "status": "waiting", "address": "http://head:8265", "spec": {},
                           "created_at": time.time()})
