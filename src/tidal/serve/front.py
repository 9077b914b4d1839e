"""The front: the always-on, light process that owns the port and starts model workers on demand.

It imports FastAPI, uvicorn and tidal's light core, never NumPy, PyAV or the processor: an idle
service with no worker is this process alone (about 80 MB RSS, tracking included). A request
is read here (a JSON body, a streamed upload held to ``max_upload_bytes``, or an allowed URL)
and sent as is to a worker, which decodes it, batches it with others and answers with JSON
bytes that are returned unchanged.

Scaling, all on the event loop:

- no worker ready → requests wait in the front's queue (up to ``queue_limit``, else 503 with
  ``Retry-After``) while a worker starts (a *cold start*); once it is ready they are sent;
- every ready worker holds two batches' worth of items → requests queue, and one more worker
  starts, up to ``max_workers``;
- a worker with no request for ``idle_timeout`` seconds is told to stop (down to
  ``min_workers``): it runs ``teardown()`` and exits, and with the process its memory (and GPU
  memory) is gone;
- a request over ``request_timeout`` gets a 504 (the worker is told to drop it); a worker that
  dies fails its requests with a 502 naming the cause and an error id, and a new one starts
  when requests need it;
- a worker whose ``process()`` has not returned after ``request_timeout`` plus
  ``WATCHDOG_GRACE_SECONDS`` (an endless loop, a deadlocked GPU call) is killed (the watchdog):
  it would keep its slot and its GPU memory; what it held gets a 504 and a new one starts.

The service is a tracked run (kind ``service``): requests, latency percentiles, cold starts and
worker lifetimes are logged every ``REPORT_SECONDS`` through the run's background writer.

Example::

    config = load_service("examples/repetitions/service.hjson")
    serve(config, port=8080)           # or: app = create_app(config); uvicorn.run(app)
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import math
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from tidal.errors import TidalError
from tidal.serve.config import ServiceConfig, url_allowed
from tidal.serve.metrics import ServeMetrics
from tidal.serve.worker import ProcessorInfo, WorkerProcess, WorkerState, describe_processor, setup_message

LOG = logging.getLogger("tidal.serve")
IDLE_CHECK_SECONDS = 0.1
REPORT_SECONDS = 10.0
STOP_GRACE_SECONDS = 10.0  # a stopping worker still alive after this is killed
WATCHDOG_GRACE_SECONDS = 1.0  # a batch in process() this long past request_timeout: the worker is killed
SETUP_RETRY_SECONDS = 5.0  # after a worker failed to start, requests fail fast this long (no crash loop)
DRAIN_LIMIT_BYTES = 16 * 1024 * 1024  # read and drop this much of a refused body, so the client reads the 413
BATCHES_AHEAD = 2  # a worker is given requests until it holds this many batches of items
JSON_TYPE = "application/json"


@dataclass
class Reply:
    """An HTTP answer: status, JSON body bytes, extra headers."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def error_reply(status: int, message: str, headers: dict[str, str] | None = None, log: bool = False) -> Reply:
    """A JSON error; a 5xx carries an error id, also written to the log with the message."""
    body: dict[str, Any] = {"error": message}
    if status >= 500:
        body["error_id"] = uuid.uuid4().hex[:12]
        if log:
            LOG.error("error %s: %s", body["error_id"], message)
    return Reply(status, json.dumps(body).encode(), headers or {})


class Problem(Exception):
    """A request refused before it reaches a worker (bad body, too large, URL not allowed)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class PendingRequest:
    """A predict request held by the front until a worker answers."""

    __slots__ = ("data", "future", "id", "kind", "worker")

    def __init__(self, kind: str, data: Any, future: asyncio.Future[Reply]) -> None:
        self.id = uuid.uuid4().hex
        self.kind = kind
        self.data = data
        self.future = future
        self.worker: WorkerProcess | None = None

    def answer(self, reply: Reply) -> None:
        if not self.future.done():
            self.future.set_result(reply)


class ServiceTracker:
    """The service's tracked run (kind ``service``); never blocks a request (the run's writer
    thread does the writing)."""

    def __init__(self, run: Any = None) -> None:
        self.run = run
        self.step = 0
        self.last_workers = -1

    @classmethod
    def start(cls, config: ServiceConfig, info: ProcessorInfo) -> ServiceTracker:
        from tidal.tracking.run import Run
        from tidal.tracking.store import open_store

        settings = {"processor": info.canonical, "http": asdict(config.http), "media": asdict(config.media),
                    "origin": config.origin}
        try:
            run = Run(open_store(), project=config.project, name=config.name, kind="service", config=settings,
                      capture=False)
        except TidalError as error:
            LOG.warning("this service is not tracked: %s", error)
            return cls()
        LOG.info("tracking this service as run %s (project %s)", run.id, config.project)
        return cls(run)

    def report(self, window: dict[str, float] | None, totals: dict[str, float]) -> None:
        """Log the window's latency percentiles and the totals, when something happened."""
        if self.run is None or (window is None and totals["workers"] == self.last_workers):
            return
        self.last_workers = int(totals["workers"])
        self.run.log_metrics({**(window or {"requests": 0.0}), **totals}, step=self.step)
        self.step += 1

    def worker_exited(self, lifetime: float, reason: str) -> None:
        if self.run is not None:
            self.run.log_metric("worker_lifetime_seconds", lifetime)

    def finish(self) -> None:
        if self.run is not None:
            self.run.finish()


class Service:
    """The front's state: held requests, workers, scaling, metrics. Lives on one event loop."""

    def __init__(self, config: ServiceConfig, info: ProcessorInfo, tracker: ServiceTracker | None = None) -> None:
        self.config = config
        self.info = info
        self.http = config.http
        self.batch_size = config.http.max_batch_size or info.batch_size
        self.setup = setup_message(config, info)
        self.tracker = tracker or ServiceTracker()
        self.metrics = ServeMetrics()
        self.waiting: deque[PendingRequest] = deque()
        self.workers: list[WorkerProcess] = []
        self.exit_reasons: dict[int, str] = {}
        self.last_setup_error: str | None = None
        self.setup_failed_at = -math.inf
        self.closing = False
        self._numbers = itertools.count(1)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._worker_tasks: set[asyncio.Task[Any]] = set()

    # --- life ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._spawn(self._every(IDLE_CHECK_SECONDS, self._check_workers), self._tasks)
        self._spawn(self._every(REPORT_SECONDS, self._report), self._tasks)
        self._scale()
        LOG.info("serving %s: batches of up to %d items, %d-%d workers, idle timeout %g s",
                 self.info.target, self.batch_size, self.http.min_workers, self.http.max_workers,
                 self.http.idle_timeout)

    async def stop(self) -> None:
        """Answer what waits with 503, let the workers finish what they hold, stop them."""
        self.closing = True
        for task in list(self._tasks):
            task.cancel()
        while self.waiting:
            self.waiting.popleft().answer(error_reply(503, "the service is shutting down; retry on another instance"))
        for worker in self.workers:
            if worker.state is WorkerState.STARTING:  # its setup is not worth finishing
                self.exit_reasons[worker.number] = "shutdown"
                worker.kill()
            elif worker.state is not WorkerState.GONE:
                self._stop_worker(worker, "shutdown")
        if self._worker_tasks:
            await asyncio.wait(list(self._worker_tasks), timeout=STOP_GRACE_SECONDS)
        for worker in self.workers:
            worker.kill()
        if self._worker_tasks:
            await asyncio.wait(list(self._worker_tasks), timeout=5)
        self._report()
        self.tracker.finish()

    def _spawn(self, coroutine: Any, tasks: set[asyncio.Task[Any]]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def _every(self, seconds: float, action: Any) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                action()
            except Exception:  # a bug in a periodic check must not stop scaling
                LOG.exception("periodic %s failed", getattr(action, "__name__", action))

    # --- requests -----------------------------------------------------------------------

    async def predict(self, kind: str, data: Any, started: float) -> Reply:
        """Hold the request until a worker answers it, the queue is full, or time runs out."""
        if self.closing:
            return error_reply(503, "the service is shutting down; retry on another instance")
        if self._failing():
            return error_reply(500, f"the model worker could not start: {self.last_setup_error}; the next "
                               f"attempt is in at most {SETUP_RETRY_SECONDS:g} s", {"Retry-After": "5"})
        if len(self.waiting) >= self.http.queue_limit and self._worker_with_room() is None:
            return error_reply(503, f"the service is busy: {len(self.waiting)} requests are already waiting for a "
                               f"worker (queue_limit {self.http.queue_limit}); retry after a moment",
                               {"Retry-After": str(self._retry_after())})
        request = PendingRequest(kind, data, asyncio.get_running_loop().create_future())
        self.waiting.append(request)
        self._dispatch()
        self._scale()
        remaining = self.http.request_timeout - (time.monotonic() - started)
        try:
            return await asyncio.wait_for(request.future, max(0.0, remaining))
        except TimeoutError:
            return self._abandon(request)

    def _abandon(self, request: PendingRequest) -> Reply:
        waiting = request in self.waiting
        if waiting:
            self.waiting.remove(request)
        elif request.worker is not None:
            request.worker.send(("cancel", request.id))
        where = ("still waiting for a worker to start" if waiting and not self._ready_workers()
                 else "waiting for a worker" if waiting else "being processed")
        return error_reply(504, f"the request took longer than request_timeout ({self.http.request_timeout:g} s); "
                           f"it was {where}; retry, or raise request_timeout (--request-timeout)", log=True)

    def _dispatch(self) -> None:
        """Send waiting requests to ready workers with room, oldest worker first (so that
        extra workers fall idle and stop when the load drops)."""
        while self.waiting:
            worker = self._worker_with_room()
            if worker is None:
                return
            request = self.waiting.popleft()
            request.worker = worker
            worker.outstanding[request.id] = request
            worker.items[request.id] = 1
            worker.send(("request", request.id, request.kind, request.data))
            request.data = None  # the front keeps no copy of an upload once it is sent

    def _worker_with_room(self) -> WorkerProcess | None:
        room = BATCHES_AHEAD * self.batch_size
        for worker in self.workers:
            if worker.state is WorkerState.READY and (not worker.outstanding or worker.load < room):
                return worker
        return None

    def _failing(self) -> bool:
        """A worker failed to start moments ago and none is ready: do not start another yet."""
        recent = time.monotonic() - self.setup_failed_at < SETUP_RETRY_SECONDS
        return recent and not self._ready_workers()

    def _ready_workers(self) -> list[WorkerProcess]:
        return [worker for worker in self.workers if worker.state is WorkerState.READY]

    def _retry_after(self) -> int:
        starting = [w for w in self.workers if w.state is WorkerState.STARTING]
        if not starting or not self.metrics.cold_start_seconds.count:
            return 1
        typical = self.metrics.cold_start_seconds.sum / self.metrics.cold_start_seconds.count
        return max(1, math.ceil(typical - (time.monotonic() - starting[0].started)))

    # --- workers ------------------------------------------------------------------------

    def _scale(self) -> None:
        """Start workers: up to min_workers always, one more while requests wait."""
        if self.closing or self._failing():
            return
        live = [w for w in self.workers if w.state in (WorkerState.STARTING, WorkerState.READY)]
        while len(live) < self.http.min_workers:
            live.append(self._start_worker("min_workers"))
        starting = any(w.state is WorkerState.STARTING for w in live)
        if self.waiting and not starting and len(live) < self.http.max_workers:
            ready = any(w.state is WorkerState.READY for w in live)
            self._start_worker("scale_up" if ready else "cold")

    def _start_worker(self, reason: str) -> WorkerProcess:
        worker = WorkerProcess(next(self._numbers))
        self.workers.append(worker)
        self.metrics.worker_starts.inc(label=reason)
        if reason == "cold":
            self.metrics.cold_starts.inc()
            LOG.info("cold start: starting worker %d for %d waiting request(s)", worker.number, len(self.waiting))
        else:
            LOG.info("starting worker %d (%s)", worker.number, reason.replace("_", " "))
        self._spawn(self._run_worker(worker), self._worker_tasks)
        return worker

    async def _run_worker(self, worker: WorkerProcess) -> None:
        try:
            await worker.start(self.setup)
        except OSError as error:
            worker.state = WorkerState.GONE
            self.workers.remove(worker)
            self._fail_waiting(500, f"cannot start a model worker process: {error}")
            return
        try:
            async for message in worker.messages():
                self._on_message(worker, message)
        except Exception:  # a protocol error: this worker cannot be trusted any more
            LOG.exception("worker %d sent something unreadable; killing it", worker.number)
            worker.kill()
        worker.close()
        self._on_exit(worker, await worker.wait(STOP_GRACE_SECONDS))

    def _on_message(self, worker: WorkerProcess, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "result":
            self._finish(worker, message[1], Reply(200, message[2]))
        elif kind == "error":
            _, request_id, status, body, trace = message
            self._log_error(worker, request_id, status, body, trace)
            self._finish(worker, request_id, Reply(status, body))
        elif kind == "accepted":
            if message[1] in worker.items:
                worker.items[message[1]] = message[2]
        elif kind == "busy":
            worker.busy_since = time.monotonic()
        elif kind == "batch":
            worker.busy_since = None
            self.metrics.observe_batch(message[1], message[2])
        elif kind == "cancelled":
            self._finish(worker, message[1], None)
        elif kind == "status":
            LOG.info("worker %d (pid %s) warming up: %s", worker.number, worker.pid, message[1])
        elif kind == "ready":
            self._on_ready(worker, message[1])
        elif kind == "setup_failed":
            self._on_setup_failed(worker, message[1], message[2])

    def _finish(self, worker: WorkerProcess, request_id: str, reply: Reply | None) -> None:
        request = worker.outstanding.pop(request_id, None)
        worker.items.pop(request_id, None)
        worker.last_active = time.monotonic()
        if request is not None and reply is not None:
            request.answer(reply)
        self._dispatch()

    def _log_error(self, worker: WorkerProcess, request_id: str, status: int, body: bytes, trace: str | None) -> None:
        if status < 500:
            return
        error = json.loads(body)
        LOG.error("request %s failed in worker %d (error id %s): %s\n%s", request_id, worker.number,
                  error.get("error_id"), error.get("error"), trace or "")

    def _on_ready(self, worker: WorkerProcess, info: dict[str, Any]) -> None:
        now = time.monotonic()
        worker.state = WorkerState.READY
        worker.ready_at = worker.last_active = now
        self.last_setup_error = None
        self.metrics.cold_start_seconds.observe(now - worker.started)
        LOG.info("worker %d (pid %s) ready in %.2f s (imports %.2f s, setup() %.2f s); %d request(s) waiting",
                 worker.number, worker.pid, now - worker.started, info["import_seconds"], info["setup_seconds"],
                 len(self.waiting))
        self._dispatch()
        self._scale()

    def _on_setup_failed(self, worker: WorkerProcess, message: str, trace: str) -> None:
        LOG.error("worker %d could not start: %s\n%s", worker.number, message, trace)
        worker.state = WorkerState.STOPPING
        self.exit_reasons[worker.number] = "setup_failed"
        self.last_setup_error = message
        self.setup_failed_at = time.monotonic()
        if not any(w.state in (WorkerState.STARTING, WorkerState.READY) for w in self.workers):
            self._fail_waiting(500, f"the model worker could not start: {message}")

    def _on_exit(self, worker: WorkerProcess, code: int | None) -> None:
        from tidal.engines.local import _exit_reason

        previous, worker.state = worker.state, WorkerState.GONE
        self.workers.remove(worker)
        lifetime = time.monotonic() - worker.started
        reason = self.exit_reasons.pop(worker.number, "idle" if previous is WorkerState.STOPPING else "crash")
        self.metrics.worker_exits.inc(label=reason)
        self.tracker.worker_exited(lifetime, reason)
        if reason == "crash":
            self._on_crash(worker, previous, _exit_reason(code))
        elif reason == "stuck":
            self._fail_outstanding(worker, 504, f"the processor did not return within request_timeout "
                                   f"({self.http.request_timeout:g} s); its worker was killed and a new one "
                                   "replaces it; retry, or raise request_timeout (--request-timeout)")
        else:
            LOG.info("worker %d (pid %s) exited after %.1f s (%s): its memory is released", worker.number,
                     worker.pid, lifetime, reason.replace("_", " "))
            for request in worker.outstanding.values():
                request.answer(error_reply(503, "the service is shutting down; retry on another instance"))
        self._scale()
        self._dispatch()

    def _on_crash(self, worker: WorkerProcess, previous: WorkerState, why: str) -> None:
        LOG.error("worker %d (pid %s) died (%s) with %d request(s) in progress", worker.number, worker.pid, why,
                  len(worker.outstanding))
        self._fail_outstanding(worker, 502, f"the model worker crashed ({why}) while processing this request; a "
                               "new worker replaces it, retry the request (if it crashes the worker again, it is "
                               "the cause)")
        if previous is WorkerState.STARTING:
            self.last_setup_error = f"the worker process died while starting ({why})"
            self.setup_failed_at = time.monotonic()
            if not self._ready_workers():
                self._fail_waiting(502, f"the model worker crashed while starting ({why}); see the service's log")

    def _fail_outstanding(self, worker: WorkerProcess, status: int, message: str) -> None:
        """Answer the requests a dead worker held (most may have had their 504 already)."""
        for request in worker.outstanding.values():
            request.answer(error_reply(status, message, log=True))

    def _fail_waiting(self, status: int, message: str) -> None:
        while self.waiting:
            self.waiting.popleft().answer(error_reply(status, message, log=True))

    def _stop_worker(self, worker: WorkerProcess, reason: str) -> None:
        worker.state = WorkerState.STOPPING
        worker.stop_requested = time.monotonic()
        self.exit_reasons.setdefault(worker.number, reason)
        if not worker.send(("stop",)):
            worker.kill()

    def _check_workers(self) -> None:
        """Stop workers idle for idle_timeout (newest first, down to min_workers); kill the
        ones that do not stop, and the stuck ones."""
        now = time.monotonic()
        self._kill_stuck(now)
        live = sum(w.state in (WorkerState.STARTING, WorkerState.READY) for w in self.workers)
        for worker in reversed(self._ready_workers()):
            idle = now - worker.last_active
            if live > self.http.min_workers and not worker.outstanding and not self.waiting \
                    and idle >= self.http.idle_timeout:
                LOG.info("worker %d (pid %s) idle for %.1f s: stopping it", worker.number, worker.pid, idle)
                self._stop_worker(worker, "idle")
                live -= 1
        self._scale()  # min_workers come back once a failed start's retry delay is over
        for worker in self.workers:
            if worker.stop_requested is not None and now - worker.stop_requested > STOP_GRACE_SECONDS:
                LOG.warning("worker %d (pid %s) did not stop in %g s: killing it", worker.number, worker.pid,
                            STOP_GRACE_SECONDS)
                worker.kill()

    def _kill_stuck(self, now: float) -> None:
        """Kill workers whose process() outlived request_timeout: a stuck worker would keep its slot
        and its (GPU) memory, and time out every request sent to it. _on_exit then fails what it held
        and the usual scaling replaces it."""
        limit = self.http.request_timeout + WATCHDOG_GRACE_SECONDS
        for worker in self.workers:
            if worker.busy_since is None or now - worker.busy_since <= limit:
                continue
            LOG.error("worker %d (pid %s) has been in process() for %.1f s, over request_timeout (%g s): killing "
                      "it (%d request(s) held)", worker.number, worker.pid, now - worker.busy_since,
                      self.http.request_timeout, len(worker.outstanding))
            worker.busy_since = None
            worker.state = WorkerState.STOPPING  # no more requests for it; the scaling may start another
            self.exit_reasons[worker.number] = "stuck"
            worker.kill()

    # --- reporting ----------------------------------------------------------------------

    def _report(self) -> None:
        totals = {"requests_total": self.metrics.requests.total(), "cold_starts": self.metrics.cold_starts.total(),
                  "workers": float(len(self._ready_workers())), "queue": float(len(self.waiting))}
        self.tracker.report(self.metrics.window.take(), totals)

    def status(self) -> dict[str, Any]:
        """What ``/readyz`` shows: the front is up; the workers' state."""
        now = time.monotonic()
        workers = [{"number": w.number, "pid": w.pid, "state": w.state.value, "requests": len(w.outstanding),
                    "items": w.load, "age_seconds": round(now - w.started, 3),
                    "idle_seconds": round(now - w.last_active, 3) if not w.outstanding else 0.0}
                   for w in self.workers]
        state = "warm" if self._ready_workers() else "starting" if self.workers else "idle (scaled to zero)"
        return {"ready": True, "state": state, "workers": workers, "waiting": len(self.waiting),
                "min_workers": self.http.min_workers, "max_workers": self.http.max_workers,
                "idle_timeout": self.http.idle_timeout, "last_setup_error": self.last_setup_error}

    def render_metrics(self) -> str:
        for state in (WorkerState.STARTING, WorkerState.READY, WorkerState.STOPPING):
            self.metrics.workers.set(sum(w.state is state for w in self.workers), state.value)
        self.metrics.queue.set(len(self.waiting))
        return self.metrics.render()


# --- reading a request's body -------------------------------------------------------------


async def read_payload(request: Request, service: Service) -> tuple[str, Any]:
    """The request as ``(kind, data)`` for a worker: ``("json", value)``, ``("url", url)`` or
    ``("upload", [(name, content type, bytes)...])``. Raises Problem for a bad request."""
    limit = service.http.max_upload_bytes
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        await _drain(request, int(declared))
        raise _too_large(limit)
    if content_type == JSON_TYPE or content_type.endswith("+json"):
        return _json_payload(await _read_body(request, limit), service)
    if content_type == "multipart/form-data":
        files = await _read_form(request, limit)
        return "upload", _check_files(files)
    if content_type.startswith(("image/", "video/")) or content_type == "application/octet-stream":
        return "upload", _check_files([("body", content_type, await _read_body(request, limit))])
    raise Problem(415, f"unsupported content type {content_type or '(none)'!r}; send JSON (application/json), "
                  "a form upload (multipart/form-data, e.g. curl -F video=@clip.mp4) or the raw bytes of an "
                  "image or video (image/*, video/*)")


def _json_payload(body: bytes, service: Service) -> tuple[str, Any]:
    try:
        data = json.loads(body)
    except ValueError as error:
        raise Problem(400, f"the body is not valid JSON: {error}") from None
    url = data.get("url") if isinstance(data, dict) and set(data) == {"url"} else None
    if not isinstance(url, str) or "url" in service.info.input_fields:
        return "json", data
    allowed = service.http.allow_urls
    if not url_allowed(url, allowed):
        where = f"under {', '.join(allowed)}" if allowed else "at all (its allow_urls list is empty)"
        raise Problem(403, f"{url} is not allowed: this service fetches URLs only {where}; upload the file "
                      "instead, or add its prefix to http.allow_urls in the service config")
    return "url", url


def _check_files(files: list[tuple[str, str, bytes]]) -> list[tuple[str, str, bytes]]:
    if not files:
        raise Problem(400, "the form holds no file; send the image or video as a file field, "
                      "e.g. curl -F video=@clip.mp4 URL")
    for name, _, content in files:
        if not content:
            raise Problem(400, f"the upload {name!r} is empty (0 bytes); send the file's content")
    return files


def _too_large(limit: int) -> Problem:
    return Problem(413, f"the request body is larger than this service's limit of {limit} bytes "
                   f"({limit / 2**20:.1f} MiB); send a smaller file, or raise http.max_upload_bytes")


async def _limited(request: Request, limit: int) -> AsyncIterator[bytes]:
    """The body's chunks as they arrive; a 413 Problem as soon as they pass ``limit`` bytes."""
    size = 0
    stream = request.stream()
    async for chunk in stream:
        size += len(chunk)
        if size > limit:
            await _drain_stream(stream)
            raise _too_large(limit)
        yield chunk


async def _read_body(request: Request, limit: int) -> bytes:
    return b"".join([chunk async for chunk in _limited(request, limit)])


async def _drain(request: Request, declared: int) -> None:
    if declared <= DRAIN_LIMIT_BYTES:
        await _drain_stream(request.stream())


async def _drain_stream(stream: AsyncIterator[bytes]) -> None:
    """Read and drop the rest of a refused body (up to a bound) so the client gets the answer
    instead of a reset connection."""
    drained = 0
    async for chunk in stream:
        drained += len(chunk)
        if drained > DRAIN_LIMIT_BYTES:
            return


class _FormFiles:
    """Collects a multipart body's file parts while it streams in."""

    def __init__(self) -> None:
        self.files: list[tuple[str, str, bytes]] = []
        self.header_name = b""
        self.header_value = b""
        self.headers: dict[bytes, bytes] = {}
        self.data = bytearray()

    def callbacks(self) -> dict[str, Any]:
        return {"on_part_begin": self.on_part_begin, "on_part_data": self.on_part_data,
                "on_part_end": self.on_part_end, "on_header_field": self.on_header_field,
                "on_header_value": self.on_header_value, "on_header_end": self.on_header_end}

    def on_part_begin(self) -> None:
        self.headers, self.data = {}, bytearray()

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        self.data += data[start:end]

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        self.headers[self.header_name.lower()] = self.header_value
        self.header_name, self.header_value = b"", b""

    def on_part_end(self) -> None:
        from python_multipart.multipart import parse_options_header

        _, options = parse_options_header(self.headers.get(b"content-disposition", b""))
        if b"filename" in options:  # plain fields are not inputs
            name = options[b"filename"].decode("utf-8", "replace") or options.get(b"name", b"file").decode()
            content_type = self.headers.get(b"content-type", b"").decode("latin-1").lower()
            self.files.append((name, content_type, bytes(self.data)))
        self.data = bytearray()


async def _read_form(request: Request, limit: int) -> list[tuple[str, str, bytes]]:
    from python_multipart.exceptions import FormParserError
    from python_multipart.multipart import MultipartParser, parse_options_header

    _, options = parse_options_header(request.headers["content-type"])
    boundary = options.get(b"boundary")
    if not boundary:
        raise Problem(400, "the multipart content type names no boundary; let your HTTP client build the form")
    form = _FormFiles()
    parser = MultipartParser(boundary, form.callbacks())  # type: ignore[arg-type]
    try:
        async for chunk in _limited(request, limit):
            parser.write(chunk)
        parser.finalize()
    except FormParserError as error:
        raise Problem(400, f"the multipart body is malformed: {error}") from None
    return form.files


# --- the application ----------------------------------------------------------------------


def create_app(config: ServiceConfig, info: ProcessorInfo | None = None, track: bool = True) -> FastAPI:
    """The front's FastAPI application (describes the processor in a worker if ``info`` is None)."""
    info = info or describe_processor(config)
    tracker = ServiceTracker.start(config, info) if track else ServiceTracker()
    service = Service(config, info, tracker)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    app = FastAPI(title=f"{config.name} (tidal serve)", version="1", lifespan=lifespan,
                  description=_description(config, info))
    app.state.service = service
    _routes(app, service)
    schema = dict(info.input_schema or {})
    definitions = schema.pop("$defs", {})
    app.openapi = lambda: _openapi(app, definitions)  # type: ignore[method-assign]
    return app


def _routes(app: FastAPI, service: Service) -> None:
    @app.post("/v1/predict", openapi_extra=_request_body(service.info), responses=_RESPONSES)
    async def predict(request: Request) -> Response:
        """Run the processor on one request: JSON, an uploaded image or video, or an allowed URL."""
        started = time.monotonic()
        try:
            kind, data = await read_payload(request, service)
            reply = await service.predict(kind, data, started)
        except Problem as problem:
            reply = error_reply(problem.status, problem.message)
        service.metrics.observe_request(reply.status, time.monotonic() - started)
        return Response(reply.body, reply.status, reply.headers, media_type=JSON_TYPE)

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        """Liveness: the front answers."""
        return JSONResponse({"status": "ok"})

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        """Readiness: the front takes requests (it holds them while a worker starts); worker states."""
        return JSONResponse(service.status())

    @app.get("/metrics")
    async def metrics() -> PlainTextResponse:
        """Prometheus metrics."""
        return PlainTextResponse(service.render_metrics(), media_type="text/plain; version=0.0.4; charset=utf-8")


_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The processor's response: `{\"results\": [...]}` or what `postprocess` returns."},
    400: {"description": "Malformed request: invalid JSON, empty upload, no file in the form."},
    403: {"description": "The URL is outside the service's allow-list."},
    413: {"description": "The body is over `max_upload_bytes`."},
    422: {"description": "The JSON does not match the input model (names the field), or the media cannot be decoded."},
    500: {"description": "The processor raised; the body has an `error_id` also in the service's log."},
    502: {"description": "The model worker crashed while processing the request; it is replaced."},
    503: {"description": "Too many requests waiting (`queue_limit`); see `Retry-After`."},
    504: {"description": "The request took longer than `request_timeout` (a worker stuck in `process()` is "
                        "killed and replaced)."},
}


def _request_body(info: ProcessorInfo) -> dict[str, Any]:
    schema = dict(info.input_schema or {"description": "any JSON value, given to the processor as one item"})
    schema.pop("$defs", None)
    url = {"type": "object", "properties": {"url": {"type": "string", "example": "s3://uploads/clip.mp4"}},
           "required": ["url"], "description": "fetch an image or video from an allowed URL"}
    json_schema = schema if "url" in info.input_fields else {"anyOf": [schema, url]}
    binary = {"type": "string", "format": "binary"}
    return {"requestBody": {"required": True, "content": {
        JSON_TYPE: {"schema": json_schema},
        "multipart/form-data": {"schema": {"type": "object", "properties": {"file": binary}}},
        "video/*": {"schema": binary}, "image/*": {"schema": binary},
    }}}


def _openapi(app: FastAPI, definitions: dict[str, Any]) -> dict[str, Any]:
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        if definitions:
            schema.setdefault("components", {}).setdefault("schemas", {}).update(definitions)
        app.openapi_schema = schema
    return app.openapi_schema


def _description(config: ServiceConfig, info: ProcessorInfo) -> str:
    http = config.http
    return (f"{info.doc}\n\nServes `{info.target}` with tidal: batches of up to "
            f"{http.max_batch_size or info.batch_size} items, {http.min_workers}-{http.max_workers} workers, "
            f"a worker stops after {http.idle_timeout:g} s without a request and starts again on the next one. "
            f"Videos are decoded {'as whole clips' if info.video == 'clip' else 'frame by frame'}.")


def serve(config: ServiceConfig, host: str = "127.0.0.1", port: int = 8080, *, track: bool = True,
          log_level: str = "info", access_log: bool = False) -> None:
    """Describe the processor (failing early on a bad config), then serve until interrupted."""
    import uvicorn

    if not logging.getLogger().handlers:  # other libraries (alembic...) say only warnings
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    LOG.setLevel(log_level.upper())
    info = describe_processor(config)
    app = create_app(config, info, track=track)
    LOG.info("listening on http://%s:%d (docs at /docs)", host, port)
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=access_log, ws="none",
                lifespan="on")
