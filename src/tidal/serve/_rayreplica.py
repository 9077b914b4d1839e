"""What runs inside a Ray Serve replica of the Ray backend: the local backend's model worker, in process.

A plain class (no Ray import here): :mod:`tidal.serve.ray` makes it a Ray Serve deployment. Each
replica runs a :class:`~tidal.serve.worker.ModelWorker`, the very worker a local model process
runs, over a :class:`ReplicaChannel` instead of a socket: the same processor host, inputs
(uploads decoded into items), batching of the items of requests that arrive together, hooks
(``preprocess``, ``postprocess``), per-item failure isolation, error bodies and JSON encoder.
Only the transport differs, so a processor answers the same behind either backend.

The worker's threads (reader and batches) talk to the replica's event loop through the channel:
a request is a :class:`~tidal.serve.protocol.Predict` put in the channel's inbox; the worker's
``Result``/``Failed``/``Cancelled`` settle the request's future on the loop.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from tidal.errors import ProcessorError
from tidal.serve.protocol import (
    BatchDone,
    Busy,
    Cancel,
    Cancelled,
    Channel,
    Failed,
    Message,
    Predict,
    Ready,
    Result,
    SetupFailed,
    Status,
    Stop,
    WorkerSettings,
)
from tidal.serve.worker import ModelWorker

LOG = logging.getLogger("tidal.serve")
STOP_SECONDS = 10.0  # a replica's teardown waits this long for the batch in process() to return

Answer = tuple[int, bytes, list[tuple[int, int]]]  # status, JSON body, batches (items, requests) since the last answer


class ReplicaChannel(Channel):
    """A channel within one process: the worker's messages go to ``deliver`` (called on the
    worker's threads), messages to the worker wait in ``inbox``."""

    def __init__(self, deliver: Callable[[Message], None]) -> None:  # no socket: nothing of Channel's
        self.deliver = deliver
        self.inbox: queue.SimpleQueue[Message] = queue.SimpleQueue()

    def send(self, message: Message) -> None:
        self.deliver(message)

    def receive(self) -> Message:
        return self.inbox.get()


class ServiceReplica:
    """One replica: sets the processor up in its constructor (a failure raises, so Ray Serve
    reports it), then answers ``(kind, data)`` requests with ``(status, body, batches)``.

    ``stuck_after``: the replica's watchdog, as the local backend's: a batch still in
    ``process()`` this many seconds after it went in (an endless loop, a deadlocked GPU call)
    fails the replica's health check, so Ray Serve stops it and starts another, instead of the
    replica holding its requests (and its share of a GPU) forever."""

    def __init__(self, settings: WorkerSettings, stuck_after: float | None = None) -> None:
        self._stuck_after = stuck_after
        self._busy_since: float | None = None  # when the batch now in process() went in
        self._pending: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Future[Answer | None]]] = {}
        self._batches: list[tuple[int, int]] = []
        self._lock = threading.Lock()
        self._started = threading.Event()
        self._setup_error: str | None = None
        self._channel = ReplicaChannel(self._deliver)
        self._worker = ModelWorker(self._channel, settings)
        self._thread = threading.Thread(target=self._worker.run, name="tidal-serve-batches", daemon=True)
        self._thread.start()
        self._started.wait()
        if self._setup_error is not None:
            raise ProcessorError(self._setup_error)

    async def __call__(self, kind: str, data: Any) -> Answer | None:
        """The answer to one request; None when it was cancelled before its batch ran."""
        loop = asyncio.get_running_loop()
        request_id = uuid.uuid4().hex
        future: asyncio.Future[Answer | None] = loop.create_future()
        self._pending[request_id] = (loop, future)
        self._channel.inbox.put(Predict(request_id, kind, data))
        try:
            return await future
        except asyncio.CancelledError:  # the front gave up (request_timeout): drop its queued items
            self._channel.inbox.put(Cancel(request_id))
            raise
        finally:
            self._pending.pop(request_id, None)

    def check_health(self) -> None:
        """Ray Serve's health check: a replica whose batch thread ended can answer nothing, one
        stuck in ``process()`` past ``stuck_after`` will not answer again."""
        if not self._thread.is_alive():
            raise ProcessorError("the replica's batch thread has ended; Ray Serve replaces the replica")
        busy_since = self._busy_since
        if self._stuck_after is not None and busy_since is not None:
            busy = time.monotonic() - busy_since
            if busy > self._stuck_after:
                LOG.error("a batch has been in process() for %.1f s (request_timeout + grace: %.1f s): the "
                          "replica is stuck; Ray Serve replaces it", busy, self._stuck_after)
                raise ProcessorError(f"stuck: a batch has been in process() for {busy:.1f} s")

    def __del__(self) -> None:
        """Ray Serve's graceful stop: let the worker finish its batches, run teardown()."""
        thread = getattr(self, "_thread", None)
        if thread is not None and thread.is_alive():
            self._channel.inbox.put(Stop())
            thread.join(STOP_SECONDS)

    # --- what the worker says (on its threads) -------------------------------------------

    def _deliver(self, message: Message) -> None:
        match message:
            case Result(request_id, body):
                self._settle(request_id, 200, body)
            case Failed(request_id, status, body, trace):
                if status >= 500 and trace:
                    LOG.error("request %s failed: %s\n%s", request_id, body.decode(errors="replace"), trace)
                self._settle(request_id, status, body)
            case Cancelled(request_id):
                self._answer(request_id, None)
            case Busy():
                self._busy_since = time.monotonic()
            case BatchDone(items, requests, _):
                self._busy_since = None
                with self._lock:
                    self._batches.append((items, requests))
            case Ready():
                self._started.set()
            case SetupFailed(text, trace):
                LOG.error("%s\n%s", text, trace)
                self._setup_error = text
                self._started.set()
            case Status(text):
                LOG.info("replica warming up: %s", text)

    def _settle(self, request_id: str, status: int, body: bytes) -> None:
        with self._lock:
            batches, self._batches = self._batches, []
        self._answer(request_id, (status, body, batches))

    def _answer(self, request_id: str, answer: Answer | None) -> None:
        pending = self._pending.get(request_id)
        if pending is not None:
            loop, future = pending
            loop.call_soon_threadsafe(_set_result, future, answer)


def _set_result(future: asyncio.Future[Answer | None], answer: Answer | None) -> None:
    if not future.done():
        future.set_result(answer)
