"""Scale to zero and back, held requests, 503/504, crashes, batching: a real front, real workers."""

from __future__ import annotations

import time
from fractions import Fraction

from servehelpers import echo, pid_alive, running_front, wait_for

from tidal.tracking.stores import open_store


def test_first_request_starts_a_worker_that_exits_when_idle() -> None:
    with running_front(echo(), idle_timeout=1.0) as front:
        assert front.status()["workers"] == []
        assert front.client.get(f"{front.url}/healthz").json() == {"status": "ok"}
        response = front.predict("hello")
        assert response.status_code == 200, response.text
        [result] = response.json()["results"]
        assert result["value"] == "hello"
        pid = result["pid"]
        assert front.worker_pids() == [pid] and pid_alive(pid)
        assert front.metric("tidal_serve_cold_starts_total") == 1
        answered = time.monotonic()
        wait_for(lambda: not front.status()["workers"], 10, "the idle worker did not stop")
        gone = wait_for(lambda: not pid_alive(pid) and time.monotonic(), 5, f"worker {pid} is still running")
        assert gone - answered < 1.0 + 1.0  # idle timeout, then within a second
        assert front.status()["state"] == "idle (scaled to zero)"
        assert front.metric('tidal_serve_worker_exits_total{reason="idle"}') == 1
        again = front.predict("again")  # and back from zero
        assert again.status_code == 200 and again.json()["results"][0]["pid"] != pid
        assert front.metric("tidal_serve_cold_starts_total") == 2


def test_requests_arriving_during_a_slow_setup_are_held_and_batched() -> None:
    with running_front(echo(setup_seconds=1.0, batch_size=8)) as front:
        started = time.monotonic()
        responses = front.predict_all([f"r{i}" for i in range(6)])
        assert time.monotonic() - started >= 1.0
        assert [r.status_code for r in responses] == [200] * 6
        results = [r.json()["results"][0] for r in responses]
        assert [r["value"] for r in results] == [f"r{i}" for i in range(6)]
        assert len({r["pid"] for r in results}) == 1
        assert max(r["batch"] for r in results) > 1  # held together, processed together
        assert front.metric("tidal_serve_cold_starts_total") == 1


def test_requests_arriving_while_the_worker_is_busy_form_one_batch() -> None:
    # a batch lasts 1 s: time enough for the other five requests to arrive, even on a loaded machine
    with running_front(echo(process_seconds=1.0, batch_size=8)) as front:
        assert front.predict("warm").status_code == 200
        responses = front.predict_all(["a", "b", "c", "d", "e", "f"])
        sizes = [r.json()["results"][0]["batch"] for r in responses]
        # a batch of n requests answers n of them, each saying n: sum(1/n) counts the batches. The first batch
        # goes as soon as the worker is free (with however many requests had arrived by then); every request
        # arriving while it is processed waits for it, and they all go together in the second.
        assert sum(Fraction(1, size) for size in sizes) <= 2, sizes
        assert front.metric("tidal_serve_batch_requests_sum") == front.metric("tidal_serve_request_seconds_count")


def test_max_wait_ms_gathers_a_batch_from_an_idle_worker() -> None:
    with running_front(echo(batch_size=4), max_wait_ms=400) as front:
        assert front.predict("warm").status_code == 200
        responses = front.predict_all(["a", "b", "c", "d"])
        assert [r.json()["results"][0]["batch"] for r in responses] == [4, 4, 4, 4]


def test_a_full_queue_answers_503_with_retry_after() -> None:
    with running_front(echo(setup_seconds=1.0), queue_limit=1) as front:
        responses = front.predict_all(["a", "b", "c"])
        codes = sorted(r.status_code for r in responses)
        assert codes == [200, 503, 503]
        refused = next(r for r in responses if r.status_code == 503)
        assert int(refused.headers["retry-after"]) >= 1
        assert "queue_limit 1" in refused.json()["error"]


def test_a_request_over_its_timeout_answers_504_and_the_worker_goes_on() -> None:
    with running_front(echo(slow_seconds=1.5), request_timeout=1.0, min_workers=1) as front:
        wait_for(lambda: front.status()["state"] == "warm", 10, "min_workers did not start a worker")
        [pid] = front.worker_pids()
        response = front.predict("slow")
        assert response.status_code == 504
        assert "it was being processed" in response.json()["error"] and response.json()["error_id"]
        after = front.predict("after")
        assert after.status_code == 200 and after.json()["results"][0]["pid"] == pid


def test_a_request_waiting_for_a_cold_start_over_its_timeout_answers_504() -> None:
    with running_front(echo(setup_seconds=1.5), request_timeout=0.5) as front:
        response = front.predict("too early")
        assert response.status_code == 504
        assert "still waiting for a worker to start" in response.json()["error"]


def test_a_worker_that_crashes_mid_request_is_replaced() -> None:
    with running_front(echo()) as front:
        first = front.predict("before").json()["results"][0]["pid"]
        crashed = front.predict("crash")
        assert crashed.status_code == 502
        body = crashed.json()
        assert "crashed (exit code 3)" in body["error"] and len(body["error_id"]) == 12
        wait_for(lambda: not pid_alive(first), 5, "the crashed worker is still there")
        after = front.predict("after")
        assert after.status_code == 200 and after.json()["results"][0]["pid"] != first
        assert front.metric('tidal_serve_worker_exits_total{reason="crash"}') == 1


def test_a_processor_that_raises_fails_its_request_alone() -> None:
    with running_front(echo(process_seconds=0.3)) as front:
        pid = front.predict("warm").json()["results"][0]["pid"]
        responses = front.predict_all(["a", "fail", "b", "c"])
        failed = responses[1]
        assert failed.status_code == 500
        assert "RuntimeError: refusing 'fail'" in failed.json()["error"] and failed.json()["error_id"]
        assert [r.status_code for i, r in enumerate(responses) if i != 1] == [200, 200, 200]
        assert front.predict("still here").json()["results"][0]["pid"] == pid


def test_a_setup_that_fails_answers_500_with_the_reason() -> None:
    with running_front({"serveprocessors.BrokenSetup": {}}) as front:
        response = front.predict("x")
        assert response.status_code == 500
        assert "model weights missing" in response.json()["error"]
        assert "model weights missing" in front.status()["last_setup_error"]
        again = front.predict("y")  # at once: answered without starting (and failing) another worker
        assert again.status_code == 500 and "model weights missing" in again.json()["error"]
        assert front.metric("tidal_serve_cold_starts_total") == 1
        wait_for(lambda: front.metric('tidal_serve_worker_exits_total{reason="setup_failed"}') == 1, 10,
                 "the worker that failed its setup did not exit")


def test_min_workers_start_at_once_and_stay() -> None:
    with running_front(echo(), min_workers=1, idle_timeout=0.3) as front:
        wait_for(lambda: front.status()["state"] == "warm", 10, "min_workers did not start a worker")
        [pid] = front.worker_pids()
        time.sleep(0.8)
        assert front.worker_pids() == [pid]
        assert front.predict("x").json()["results"][0]["pid"] == pid


def test_max_workers_adds_workers_under_load() -> None:
    with running_front(echo(process_seconds=0.3, batch_size=1), max_workers=2, idle_timeout=60) as front:
        responses = front.predict_all([str(i) for i in range(8)])
        assert [r.status_code for r in responses] == [200] * 8
        assert len({r.json()["results"][0]["pid"] for r in responses}) == 2
        assert front.metric('tidal_serve_worker_starts_total{reason="scale_up"}') == 1


def test_the_service_is_a_tracked_run(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("TIDAL_HOME", str(tmp_path))
    monkeypatch.delenv("TIDAL_TRACKING_URI", raising=False)
    with running_front(echo(), track=True, idle_timeout=0.3) as front:
        assert [r.status_code for r in front.predict_all(["a", "b", "c"])] == [200] * 3
        wait_for(lambda: not front.status()["workers"], 10, "the worker did not stop")
    store = open_store(None, home=tmp_path)
    [run] = store.list_runs()
    assert (run["kind"], run["name"], run["status"]) == ("service", "test-service", "completed")
    metrics = store.metrics(run["id"])
    assert sum(value for _, value, _ in metrics["requests"]) == 3
    assert {"latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "cold_starts"} <= set(metrics)
    assert metrics["worker_lifetime_seconds"][0][1] > 0.3
    assert store.get_run(run["id"])["config"]["processor"]["_target_"] == "serveprocessors.Echo"
