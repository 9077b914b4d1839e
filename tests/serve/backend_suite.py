"""The behaviour every serving backend must have. Mixed into one test class per backend.

A class using it defines a ``make_backend`` fixture: ``make_backend(processor, **http)`` returns
a backend (not started) serving ``processor`` (a spec from serveprocessors, e.g. ``echo()``)
with those ``http`` settings. Each test drives the backend on its own event loop, no HTTP.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import pytest
from servehelpers import echo, pid_alive

from tidal.errors import ConfigError
from tidal.serve.backend import Backend, Reply
from tidal.serve.payload import Payload

MakeBackend = Callable[..., Backend]


def run(test: Coroutine[Any, Any, None]) -> None:
    asyncio.run(test)


@asynccontextmanager
async def started(backend: Backend) -> AsyncIterator[Backend]:
    await backend.start()
    try:
        yield backend
    finally:
        await backend.stop()


async def predict(backend: Backend, value: Any) -> Reply:
    return await backend.predict(Payload("json", value))


def results(reply: Reply) -> list[Any]:
    assert reply.status == 200, reply.body
    return json.loads(reply.body)["results"]  # type: ignore[no-any-return]


async def eventually(condition: Callable[[], Any], seconds: float, message: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(message)
        await asyncio.sleep(0.02)


class BackendSuite:
    """Tests shared by all serving backends."""

    def test_starts_with_no_worker_and_a_request_starts_one(self, make_backend: MakeBackend) -> None:
        async def test() -> None:
            async with started(make_backend(echo(), idle_timeout=60)) as backend:
                assert backend.status()["workers"] == []
                assert backend.status()["state"] == "idle (scaled to zero)"
                [result] = results(await predict(backend, "hello"))
                assert result["value"] == "hello"
                status = backend.status()
                assert status["state"] == "warm"
                assert [worker["pid"] for worker in status["workers"]] == [result["pid"]]

        run(test())

    def test_requests_that_arrive_together_are_answered_in_order(self, make_backend: MakeBackend) -> None:
        async def test() -> None:
            async with started(make_backend(echo(batch_size=4))) as backend:
                replies = await asyncio.gather(*(predict(backend, f"r{i}") for i in range(6)))
                assert [results(reply)[0]["value"] for reply in replies] == [f"r{i}" for i in range(6)]

        run(test())

    def test_an_idle_worker_stops_and_the_next_request_starts_another(self, make_backend: MakeBackend) -> None:
        async def test() -> None:
            async with started(make_backend(echo(), idle_timeout=0.3)) as backend:
                first = results(await predict(backend, "a"))[0]["pid"]
                await eventually(lambda: not backend.status()["workers"], 10, "the idle worker did not stop")
                await eventually(lambda: not pid_alive(first), 5, f"worker {first} is still running")
                assert backend.status()["state"] == "idle (scaled to zero)"
                again = results(await predict(backend, "b"))[0]["pid"]
                assert again != first

        run(test())

    def test_a_crashing_worker_fails_its_request_and_is_replaced(self, make_backend: MakeBackend) -> None:
        async def test() -> None:
            async with started(make_backend(echo())) as backend:
                first = results(await predict(backend, "before"))[0]["pid"]
                crashed = await predict(backend, "crash")
                assert crashed.status == 502
                assert "crashed" in json.loads(crashed.body)["error"]
                after = results(await predict(backend, "after"))[0]["pid"]
                assert after != first and not pid_alive(first)

        run(test())

    def test_a_processor_that_raises_answers_500_and_the_worker_goes_on(self, make_backend: MakeBackend) -> None:
        async def test() -> None:
            async with started(make_backend(echo())) as backend:
                pid = results(await predict(backend, "warm"))[0]["pid"]
                failed = await predict(backend, "fail")
                assert failed.status == 500
                assert "RuntimeError: refusing 'fail'" in json.loads(failed.body)["error"]
                assert results(await predict(backend, "after"))[0]["pid"] == pid

        run(test())

    def test_scale_starts_and_stops_workers_without_requests(self, make_backend: MakeBackend) -> None:
        async def test() -> None:
            async with started(make_backend(echo(), idle_timeout=0.3)) as backend:
                backend.scale(min_workers=1)
                await eventually(lambda: backend.status()["state"] == "warm", 10, "scale(min_workers=1) started none")
                assert backend.status()["min_workers"] == 1
                await asyncio.sleep(0.6)  # past the idle timeout: min_workers stays
                assert len(backend.status()["workers"]) == 1
                backend.scale(min_workers=0)
                await eventually(lambda: not backend.status()["workers"], 10, "scale(min_workers=0) kept the worker")
                with pytest.raises(ConfigError, match="min_workers"):
                    backend.scale(min_workers=3, max_workers=2)

        run(test())

    def test_scale_down_max_workers_stops_idle_workers_at_once(self, make_backend: MakeBackend) -> None:
        async def test() -> None:
            async with started(make_backend(echo(), min_workers=2, max_workers=2, idle_timeout=60)) as backend:
                await eventually(lambda: sum(w["state"] == "ready" for w in backend.status()["workers"]) == 2, 20,
                                 "min_workers=2 did not start two workers")
                backend.scale(min_workers=0, max_workers=1)
                await eventually(lambda: len(backend.status()["workers"]) == 1, 10,
                                 "max_workers=1 kept two idle workers")
                assert results(await predict(backend, "x"))[0]["pid"] == backend.status()["workers"][0]["pid"]

        run(test())

    def test_stop_ends_the_workers_and_refuses_later_requests(self, make_backend: MakeBackend) -> None:
        async def test() -> None:
            backend = make_backend(echo(), idle_timeout=60)
            async with started(backend):
                pid = results(await predict(backend, "x"))[0]["pid"]
            assert not pid_alive(pid)
            refused = await predict(backend, "late")
            assert refused.status == 503 and "shutting down" in json.loads(refused.body)["error"]

        run(test())
