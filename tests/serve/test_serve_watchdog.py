"""The watchdog: a worker stuck in process() past request_timeout is killed and replaced."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from servehelpers import echo, pid_alive, running_front, wait_for


@pytest.mark.slow
def test_a_worker_stuck_in_process_is_killed_and_replaced() -> None:
    with running_front(echo(), request_timeout=1.5) as front:
        pid = front.predict("warm").json()["results"][0]["pid"]
        started = time.monotonic()
        stuck = front.predict("hang")
        assert stuck.status_code == 504 and stuck.json()["error_id"]
        assert time.monotonic() - started < 1.5 + 5.0
        wait_for(lambda: not pid_alive(pid), 5, f"the stuck worker {pid} was not killed")
        assert pid not in front.worker_pids()
        after = front.predict("after")
        if after.status_code == 504 and "waiting for a worker to start" in after.text:
            after = front.predict("after")  # a loaded machine started the new worker in more than 1.5 s
        assert after.status_code == 200, after.text
        assert after.json()["results"][0]["pid"] != pid
        assert front.metric('tidal_serve_worker_exits_total{reason="stuck"}') == 1


@pytest.mark.slow
def test_requests_held_by_a_stuck_worker_get_the_watchdogs_504() -> None:
    with running_front(echo(batch_size=1), request_timeout=3.0) as front:
        pid = front.predict("warm").json()["results"][0]["pid"]

        def late() -> httpx.Response:
            """Sent while the worker is stuck (2.5 s in): its own deadline (5.5 s) falls after the
            watchdog fires (about 4 s), with 1.5 s of margin either way for a loaded machine."""
            time.sleep(2.5)
            return httpx.post(f"{front.url}/v1/predict", json="queued", timeout=30)

        with ThreadPoolExecutor(1) as pool:
            held = pool.submit(late)
            assert front.predict("hang").status_code == 504
            response = held.result(10)
        assert response.status_code == 504, response.text
        error = response.json()["error"]
        assert "did not return within request_timeout (3 s)" in error and "killed" in error
        assert response.json()["error_id"]
        wait_for(lambda: not pid_alive(pid), 5, f"the stuck worker {pid} was not killed")


@pytest.mark.slow
def test_a_condemned_worker_gets_no_request_and_readyz_says_so() -> None:
    """Between the stuck request's 504 (request_timeout) and the watchdog's kill (one second
    later), the worker is condemned: /readyz answers 503 and a new request waits for the
    replacement instead of going to it (its deadline, 3 s, leaves 2 s for the cold start)."""
    with running_front(echo(), request_timeout=3.0) as front:
        pid = front.predict("warm").json()["results"][0]["pid"]
        assert front.client.get(f"{front.url}/readyz").status_code == 200
        assert front.predict("hang").status_code == 504
        readyz = front.client.get(f"{front.url}/readyz")
        assert readyz.status_code == 503 and readyz.json()["state"] == "stuck", readyz.text
        after = front.predict("after")  # sent at once, before the kill
        assert after.status_code == 200, after.text
        assert after.json()["results"][0]["pid"] != pid
        assert front.client.get(f"{front.url}/readyz").status_code == 200


@pytest.mark.slow
def test_retry_after_comes_from_the_measured_drain_rate() -> None:
    """Each request takes 0.5 s: with 2 held by the worker and 1 waiting, the queue needs about
    1.5 s to drain, so Retry-After says 2, not 1."""
    with running_front(echo(process_seconds=0.5, batch_size=1), queue_limit=1, request_timeout=30) as front:
        for index in range(4):  # the drain rate: about 2 requests per second
            assert front.predict(f"warm {index}").status_code == 200
        responses = front.predict_all([f"burst {index}" for index in range(8)])
        busy = [response for response in responses if response.status_code == 503]
        assert busy and len(busy) < 8, [response.status_code for response in responses]
        assert {int(response.headers["retry-after"]) for response in busy} <= {2, 3}
