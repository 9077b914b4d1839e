"""The scaler: which worker gets a request, when workers start and when they stop.

All on the front's event loop, over :class:`Worker` handles that a backend provides:

- no worker ready → requests wait in the queue (up to ``queue_limit``, else 503 with
  ``Retry-After``: the requests ahead over the measured drain rate, or the typical cold start
  before anything drained) while a worker starts (a *cold start*); once it is ready they are sent;
- every ready worker holds ``BATCHES_AHEAD`` batches' worth of items → requests queue, and one
  more worker starts, up to ``max_workers``;
- a worker with no request for ``idle_timeout`` seconds is told to stop (down to
  ``min_workers``): it runs ``teardown()`` and exits, and with the process its memory (and GPU
  memory) is gone;
- a request over ``request_timeout`` gets a 504 (the worker is told to drop it); a worker that
  dies fails its requests with a 502 naming the cause and an error id, and a new one starts
  when requests need it;
- a worker whose ``process()`` has not returned after ``request_timeout`` plus
  ``WATCHDOG_GRACE_SECONDS`` (an endless loop, a deadlocked GPU call) is killed (the watchdog):
  it would keep its slot and its GPU memory; what it held gets a 504 and a new one starts.
  From the first timeout of a request it holds (at the latest from ``request_timeout``), such
  a worker is *condemned* until its batch returns: no request is sent to it (they wait for
  the batch, or for the replacement), and ``/readyz`` says not ready when no other worker can
  take work.

The backend tells the scaler what its workers say (:meth:`Scaler.worker_ready`,
:meth:`Scaler.finish`, :meth:`Scaler.worker_exited`...); the scaler tells workers what to do
through :meth:`Worker.send` and :meth:`Worker.kill`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from enum import Enum
from typing import Any

from tidal.errors import ConfigError
from tidal.serve.backend import Reply, error_reply
from tidal.serve.config import HTTPSettings
from tidal.serve.metrics import DrainRate, ServeMetrics
from tidal.serve.payload import Payload
from tidal.serve.protocol import Cancel, Message, Predict, Stop
from tidal.serve.tracker import ServiceTracker

LOG = logging.getLogger("tidal.serve")
IDLE_CHECK_SECONDS = 0.1
REPORT_SECONDS = 10.0
STOP_GRACE_SECONDS = 10.0  # a stopping worker still alive after this is killed
WATCHDOG_GRACE_SECONDS = 1.0  # a batch in process() this long past request_timeout: the worker is killed
SETUP_RETRY_SECONDS = 5.0  # after a worker failed to start, requests fail fast this long (no crash loop)
BATCHES_AHEAD = 2  # a worker is given requests until it holds this many batches of items
SHUTTING_DOWN = "the service is shutting down; retry on another instance"


class WorkerState(str, Enum):
    STARTING = "starting"  # importing, running setup()
    READY = "ready"  # taking requests
    STOPPING = "stopping"  # told to stop (idle or shutdown), tearing down
    GONE = "gone"  # the process has exited


class Worker:
    """The scaler's view of one worker: its state and the requests it holds. A backend
    subclasses it with the mechanics: :meth:`send`, :meth:`kill` and ``pid``."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.state = WorkerState.STARTING
        self.started = time.monotonic()
        self.ready_at: float | None = None
        self.last_active = self.started
        self.outstanding: dict[str, PendingRequest] = {}  # request id → the held request
        self.items: dict[str, int] = {}  # request id → items (1 until the worker says)
        self.stop_requested: float | None = None
        self.busy_since: float | None = None  # a batch is in process() since then (None: not busy)
        self.overdue = False  # a request it held timed out during this batch

    @property
    def pid(self) -> int | None:
        """The worker's process id, where it has one."""
        return None

    @property
    def load(self) -> int:
        """Items sent and not yet answered."""
        return sum(self.items.values())

    def condemned(self, now: float, request_timeout: float) -> bool:
        """In ``process()`` for longer than any request may take, or since a request it held
        timed out: it gets no more requests until the batch returns (if it returns: the
        watchdog kills it past ``request_timeout``)."""
        return self.busy_since is not None and (self.overdue or now - self.busy_since > request_timeout)

    def send(self, message: Message) -> bool:
        """Queue a message for the worker; False when its connection is gone."""
        raise NotImplementedError

    def kill(self) -> None:
        """End the worker now (its exit is then reported to :meth:`Scaler.worker_exited`)."""
        raise NotImplementedError


class PendingRequest:
    """A predict request held by the front until a worker answers."""

    __slots__ = ("data", "future", "id", "kind", "worker")

    def __init__(self, payload: Payload, future: asyncio.Future[Reply]) -> None:
        self.id = uuid.uuid4().hex
        self.kind = payload.kind
        self.data = payload.data
        self.future = future
        self.worker: Worker | None = None

    def answer(self, reply: Reply) -> None:
        if not self.future.done():
            self.future.set_result(reply)


class Scaler:
    """Held requests, workers, scaling and metrics of one service.

    ``new_worker(number)`` makes a worker handle; ``run_worker(worker)`` starts it, reports what
    it says until it exits, and returns why it exited ("exit code 3"); OSError if it cannot
    start. That is the backend's side of the conversation."""

    def __init__(self, http: HTTPSettings, batch_size: int, metrics: ServeMetrics, tracker: ServiceTracker,
                 new_worker: Callable[[int], Worker], run_worker: Callable[[Worker], Awaitable[str]]) -> None:
        self.http = http
        self.batch_size = batch_size
        self.min_workers = http.min_workers
        self.max_workers = http.max_workers
        self.metrics = metrics
        self.tracker = tracker
        self.new_worker = new_worker
        self.run_worker = run_worker
        self.waiting: deque[PendingRequest] = deque()
        self.workers: list[Worker] = []
        self.exit_reasons: dict[int, str] = {}
        self.last_setup_error: str | None = None
        self.setup_failed_at = -math.inf
        self.closing = False
        self.drain = DrainRate()
        self._numbers = itertools.count(1)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._worker_tasks: set[asyncio.Task[Any]] = set()

    # --- life ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._spawn(self._every(IDLE_CHECK_SECONDS, self._check_workers), self._tasks)
        self._spawn(self._every(REPORT_SECONDS, self._report), self._tasks)
        self._scale()

    async def stop(self) -> None:
        """Answer what waits with 503, let the workers finish what they hold, stop them."""
        self.closing = True
        for task in list(self._tasks):
            task.cancel()
        self._fail_waiting(503, SHUTTING_DOWN)
        for worker in self.workers:
            if worker.state is WorkerState.STARTING:  # its setup is not worth finishing
                self.exit_reasons[worker.number] = "shutdown"
                worker.kill()
            elif worker.state is not WorkerState.GONE:
                self.stop_worker(worker, "shutdown")
        if self._worker_tasks:
            await asyncio.wait(list(self._worker_tasks), timeout=STOP_GRACE_SECONDS)
        for worker in self.workers:
            worker.kill()
        if self._worker_tasks:
            await asyncio.wait(list(self._worker_tasks), timeout=5)
        self._report()
        self.tracker.finish()

    def _spawn(self, coroutine: Coroutine[Any, Any, None], tasks: set[asyncio.Task[Any]]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def _every(self, seconds: float, action: Callable[[], None]) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                action()
            except Exception:  # a bug in a periodic check must not stop scaling
                LOG.exception("periodic %s failed", getattr(action, "__name__", action))

    def scale(self, min_workers: int | None = None, max_workers: int | None = None) -> None:
        """New bounds on the number of workers; see :meth:`Backend.scale`."""
        low = self.min_workers if min_workers is None else min_workers
        high = self.max_workers if max_workers is None else max_workers
        if low < 0 or high < 1 or low > high:
            raise ConfigError(f"cannot scale to min_workers {low}, max_workers {high}: need 0 <= min_workers "
                              "<= max_workers and max_workers >= 1")
        self.min_workers, self.max_workers = low, high
        self._check_workers()

    # --- requests -----------------------------------------------------------------------

    async def predict(self, payload: Payload) -> Reply:
        """Hold the request until a worker answers it, the queue is full, or time runs out."""
        if self.closing:
            return error_reply(503, SHUTTING_DOWN)
        if self._failing():
            return error_reply(500, f"the model worker could not start: {self.last_setup_error}; the next "
                               f"attempt is in at most {SETUP_RETRY_SECONDS:g} s", {"Retry-After": "5"})
        if len(self.waiting) >= self.http.queue_limit and self._worker_with_room() is None:
            return error_reply(503, f"the service is busy: {len(self.waiting)} requests are already waiting for a "
                               f"worker (queue_limit {self.http.queue_limit}); retry after a moment",
                               {"Retry-After": str(self._retry_after())})
        request = PendingRequest(payload, asyncio.get_running_loop().create_future())
        self.waiting.append(request)
        self._dispatch()
        self._scale()
        remaining = self.http.request_timeout - (time.monotonic() - payload.received)
        try:
            return await asyncio.wait_for(request.future, max(0.0, remaining))
        except TimeoutError:
            return self._abandon(request)

    def _abandon(self, request: PendingRequest) -> Reply:
        waiting = request in self.waiting
        if waiting:
            self.waiting.remove(request)
        elif request.worker is not None:
            request.worker.send(Cancel(request.id))
            request.worker.overdue = request.worker.busy_since is not None
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
            worker.send(Predict(request.id, request.kind, request.data))
            request.data = None  # the front keeps no copy of an upload once it is sent

    def _worker_with_room(self) -> Worker | None:
        room = BATCHES_AHEAD * self.batch_size
        for worker in self._able_workers():
            if not worker.outstanding or worker.load < room:
                return worker
        return None

    def _able_workers(self) -> list[Worker]:
        """Ready workers that are not condemned (stuck in process() past request_timeout)."""
        now = time.monotonic()
        return [worker for worker in self._ready_workers() if not worker.condemned(now, self.http.request_timeout)]

    def can_take_work(self) -> bool:
        """A worker can take a request now or soon: an able one, one starting, or room to start one."""
        if self.closing or self._failing():
            return False
        if self._able_workers() or any(w.state is WorkerState.STARTING for w in self.workers):
            return True
        return len(self._live_workers()) < self.max_workers

    def _failing(self) -> bool:
        """A worker failed to start moments ago and none is ready: do not start another yet."""
        recent = time.monotonic() - self.setup_failed_at < SETUP_RETRY_SECONDS
        return recent and not self._ready_workers()

    def _ready_workers(self) -> list[Worker]:
        return [worker for worker in self.workers if worker.state is WorkerState.READY]

    def _live_workers(self) -> list[Worker]:
        return [w for w in self.workers if w.state in (WorkerState.STARTING, WorkerState.READY)]

    def _retry_after(self) -> int:
        """Seconds until the requests ahead are likely answered: their count over the measured
        drain rate (plus what is left of a cold start), at most ``request_timeout``."""
        ahead = len(self.waiting) + sum(len(worker.outstanding) for worker in self.workers)
        rate = self.drain.per_second()
        seconds = ahead / rate if rate else 0.0
        starting = [w for w in self.workers if w.state is WorkerState.STARTING]
        if starting and not self._able_workers() and self.metrics.cold_start_seconds.count:
            typical = self.metrics.cold_start_seconds.sum / self.metrics.cold_start_seconds.count
            seconds += max(0.0, typical - (time.monotonic() - starting[0].started))
        return max(1, min(math.ceil(seconds), math.ceil(self.http.request_timeout)))

    # --- starting workers ---------------------------------------------------------------

    def _scale(self) -> None:
        """Start workers: up to min_workers always, one more while requests wait."""
        if self.closing or self._failing():
            return
        live = self._live_workers()
        while len(live) < self.min_workers:
            live.append(self._start_worker("min_workers"))
        starting = any(w.state is WorkerState.STARTING for w in live)
        if self.waiting and not starting and len(live) < self.max_workers:
            ready = any(w.state is WorkerState.READY for w in live)
            self._start_worker("scale_up" if ready else "cold")

    def _start_worker(self, reason: str) -> Worker:
        worker = self.new_worker(next(self._numbers))
        self.workers.append(worker)
        self.metrics.worker_starts.inc(label=reason)
        if reason == "cold":
            self.metrics.cold_starts.inc()
            LOG.info("cold start: starting worker %d for %d waiting request(s)", worker.number, len(self.waiting))
        else:
            LOG.info("starting worker %d (%s)", worker.number, reason.replace("_", " "))
        self._spawn(self._run(worker), self._worker_tasks)
        return worker

    async def _run(self, worker: Worker) -> None:
        try:
            why = await self.run_worker(worker)
        except OSError as error:  # its process could not even start
            worker.state = WorkerState.GONE
            self.workers.remove(worker)
            self._fail_waiting(500, f"cannot start a model worker process: {error}")
            return
        self.worker_exited(worker, why)

    # --- what workers say (the backend reports it) --------------------------------------

    def worker_ready(self, worker: Worker, import_seconds: float, setup_seconds: float) -> None:
        now = time.monotonic()
        worker.state = WorkerState.READY
        worker.ready_at = worker.last_active = now
        self.last_setup_error = None
        self.metrics.cold_start_seconds.observe(now - worker.started)
        LOG.info("worker %d (pid %s) ready in %.2f s (imports %.2f s, setup() %.2f s); %d request(s) waiting",
                 worker.number, worker.pid, now - worker.started, import_seconds, setup_seconds, len(self.waiting))
        self._dispatch()
        self._scale()

    def setup_failed(self, worker: Worker, message: str, trace: str) -> None:
        LOG.error("worker %d could not start: %s\n%s", worker.number, message, trace)
        worker.state = WorkerState.STOPPING
        self.exit_reasons[worker.number] = "setup_failed"
        self.last_setup_error = message
        self.setup_failed_at = time.monotonic()
        if not self._live_workers():
            self._fail_waiting(500, f"the model worker could not start: {message}")

    def accepted(self, worker: Worker, request_id: str, items: int) -> None:
        """The worker decoded a request into ``items`` items (they count toward its load)."""
        if request_id in worker.items:
            worker.items[request_id] = items

    def busy(self, worker: Worker) -> None:
        """A batch went into ``process()`` (the watchdog times it)."""
        worker.busy_since = time.monotonic()
        worker.overdue = False

    def batch_done(self, worker: Worker, items: int, requests: int) -> None:
        worker.busy_since = None
        worker.overdue = False
        self.metrics.observe_batch(items, requests)

    def finish(self, worker: Worker, request_id: str, reply: Reply | None) -> None:
        """A request is answered (``reply``) or dropped after its timeout (None)."""
        request = worker.outstanding.pop(request_id, None)
        worker.items.pop(request_id, None)
        worker.last_active = time.monotonic()
        self.drain.record()
        if request is not None and reply is not None:
            request.answer(reply)
        self._dispatch()

    def worker_exited(self, worker: Worker, why: str) -> None:
        """The worker is gone (``why``: its exit code or signal): fail or answer what it held,
        start another if needed."""
        previous, worker.state = worker.state, WorkerState.GONE
        self.workers.remove(worker)
        lifetime = time.monotonic() - worker.started
        reason = self.exit_reasons.pop(worker.number, "idle" if previous is WorkerState.STOPPING else "crash")
        self.metrics.worker_exits.inc(label=reason)
        self.tracker.worker_exited(lifetime)
        if reason == "crash":
            self._on_crash(worker, previous, why)
        elif reason == "stuck":
            self._fail_outstanding(worker, 504, f"the processor did not return within request_timeout "
                                   f"({self.http.request_timeout:g} s); its worker was killed and a new one "
                                   "replaces it; retry, or raise request_timeout (--request-timeout)")
        else:
            LOG.info("worker %d (pid %s) exited after %.1f s (%s): its memory is released", worker.number,
                     worker.pid, lifetime, reason.replace("_", " "))
            for request in worker.outstanding.values():
                request.answer(error_reply(503, SHUTTING_DOWN))
        self._scale()
        self._dispatch()

    def _on_crash(self, worker: Worker, previous: WorkerState, why: str) -> None:
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

    def _fail_outstanding(self, worker: Worker, status: int, message: str) -> None:
        """Answer the requests a dead worker held (most may have had their 504 already)."""
        for request in worker.outstanding.values():
            request.answer(error_reply(status, message, log=True))

    def _fail_waiting(self, status: int, message: str) -> None:
        while self.waiting:
            self.waiting.popleft().answer(error_reply(status, message, log=status >= 500 and status != 503))

    # --- stopping workers ---------------------------------------------------------------

    def stop_worker(self, worker: Worker, reason: str) -> None:
        worker.state = WorkerState.STOPPING
        worker.stop_requested = time.monotonic()
        self.exit_reasons.setdefault(worker.number, reason)
        if not worker.send(Stop()):
            worker.kill()

    def _check_workers(self) -> None:
        """Stop workers idle for idle_timeout (newest first, down to min_workers) and idle ones
        above max_workers; kill the ones that do not stop, and the stuck ones."""
        now = time.monotonic()
        self._kill_stuck(now)
        live = len(self._live_workers())
        for worker in reversed(self._ready_workers()):
            idle = now - worker.last_active
            if worker.outstanding or (self.waiting and live <= self.max_workers):
                continue
            if live > self.max_workers or (live > self.min_workers and idle >= self.http.idle_timeout):
                LOG.info("worker %d (pid %s) idle for %.1f s: stopping it", worker.number, worker.pid, idle)
                self.stop_worker(worker, "idle")
                live -= 1
        self._scale()  # min_workers come back once a failed start's retry delay is over
        for worker in self.workers:
            if worker.stop_requested is not None and now - worker.stop_requested > STOP_GRACE_SECONDS:
                LOG.warning("worker %d (pid %s) did not stop in %g s: killing it", worker.number, worker.pid,
                            STOP_GRACE_SECONDS)
                worker.kill()

    def _kill_stuck(self, now: float) -> None:
        """Kill workers whose process() outlived request_timeout: a stuck worker would keep its slot
        and its (GPU) memory, and time out every request sent to it. worker_exited then fails what
        it held and the usual scaling replaces it."""
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
        state = ("warm" if self._able_workers() else "stuck" if self._ready_workers()
                 else "starting" if self.workers else "idle (scaled to zero)")
        return {"ready": self.can_take_work(), "state": state, "workers": workers, "waiting": len(self.waiting),
                "min_workers": self.min_workers, "max_workers": self.max_workers,
                "idle_timeout": self.http.idle_timeout, "last_setup_error": self.last_setup_error}

    def render_metrics(self) -> str:
        for state in (WorkerState.STARTING, WorkerState.READY, WorkerState.STOPPING):
            self.metrics.workers.set(sum(w.state is state for w in self.workers), state.value)
        self.metrics.queue.set(len(self.waiting))
        return self.metrics.render()
