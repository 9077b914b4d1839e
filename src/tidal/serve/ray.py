"""The Ray backend: a service's model workers are Ray Serve replicas, scaled from zero by Ray Serve.

``tidal serve service.hjson --backend ray [--address ray://head:10001]`` (or ``backend: {ray:
{...}}`` in the service config, see :class:`~tidal.serve.config.RaySettings`) deploys the
processor as a Ray Serve application with autoscaling from zero replicas (``min_replicas =
min_workers``), each replica holding ``num_cpus``/``num_gpus`` (fractions allowed: several
replicas share a GPU). Each replica runs the local backend's model worker in process
(:mod:`tidal.serve._rayreplica`): the same processor host, decoding, batching of items,
``preprocess``/``postprocess`` hooks, error bodies and JSON.

The light front stays as it is (routes, request reading, URL fetching, schema checks, metrics,
the tracked run) and forwards each request through a Ray Serve ``DeploymentHandle``, not over
Ray's HTTP proxy. Why: no second HTTP hop and no re-encoding of an upload (the payload goes to
the replica as it is, through Ray's object store); Ray's typed errors tell a crashed replica
(502) from a full queue (503) and a processor error (500), which a proxy's bare 500 cannot;
a request past ``request_timeout`` is cancelled in the replica, not only abandoned; and no HTTP
proxy actor is started (``proxy_location="Disabled"``): one actor less to keep in memory. The
price: the front is a Ray driver and imports Ray Serve, which brings NumPy (never PyAV or the
processor): about 250 MB RSS instead of the local front's 80 MB, beside a Ray node's own 2 GB.

How the ``http`` settings map onto Ray Serve's:

==================== ==================================================================
``min_workers``      ``min_replicas`` and ``initial_replicas`` (0: scaled to zero)
``max_workers``      ``max_replicas``
``idle_timeout``     Ray's look-back (the request metrics are averaged over ``idle_timeout
                     / 2``, at most Ray's 30 s) plus ``downscale_delay_s`` and
                     ``downscale_to_zero_delay_s`` (the rest): a replica exits about
                     ``idle_timeout`` after the last request, not Ray's 30 s look-back later
``max_batch_size``   the replica's batches (items), and ``target_ongoing_requests``
``queue_limit``      ``max_queued_requests`` (503 with ``Retry-After`` past it)
``request_timeout``  the front cancels the request in Ray (504)
==================== ==================================================================

Example::

    backend = RayServeBackend(load_service("service.hjson", backend="ray"), info)
    await backend.start()                 # connects to Ray, deploys with min_replicas=0
    reply = await backend.predict(Payload("json", {"text": "hello"}))
    await backend.stop()                  # deletes the application: its replicas exit
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import math
import os
import re
import time
import uuid
import warnings
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any

from tidal.children import alive
from tidal.errors import ConfigError
from tidal.serve.backend import Backend, Reply, error_reply
from tidal.serve.config import ServiceConfig
from tidal.serve.hooks import ProcessorInfo
from tidal.serve.local import worker_settings
from tidal.serve.metrics import ServeMetrics
from tidal.serve.payload import Payload
from tidal.serve.scaling import (
    BATCHES_AHEAD,
    REPORT_SECONDS,
    SETUP_RETRY_SECONDS,
    SHUTTING_DOWN,
    STOP_GRACE_SECONDS,
    WATCHDOG_GRACE_SECONDS,
)
from tidal.serve.tracker import ServiceTracker

LOG = logging.getLogger("tidal.serve")
WHERE = "backend.ray"
DEPLOYMENT = "processor"
WATCH_SECONDS = 0.5  # how often the front reads the replicas' states (cold starts, metrics)
HEALTH_CHECK_SECONDS = 2.0  # Ray Serve's health check of each replica (its default, 10 s, delays replacing a dead one)
CONSTRUCTOR_RETRIES = 3  # a processor whose setup() fails is tried this many times before requests fail
STALE_VERDICT_SECONDS = 10.0  # after a new setup attempt is deployed, Ray's old "failed" is ignored this long at most
LOOK_BACK_LIMIT_SECONDS = 30.0  # Ray Serve's default look-back; longer idle timeouts keep it
# replica states as /readyz names a worker's (Ray Serve's ReplicaState values)
WORKER_STATES = {"STARTING": "starting", "UPDATING": "starting", "RECOVERING": "starting", "RUNNING": "ready",
                 "PENDING_MIGRATION": "ready", "STOPPING": "stopping"}


class RayServeBackend(Backend):
    """The service's processor in Ray Serve replicas, autoscaled from ``min_workers`` (0: none
    while idle) to ``max_workers``; see the module docstring for how settings map to Ray's."""

    def __init__(self, config: ServiceConfig, info: ProcessorInfo, tracker: ServiceTracker | None = None,
                 metrics: ServeMetrics | None = None) -> None:
        _check_address(config.ray.address)  # fail before the front starts, not inside its lifespan
        self.config = config
        self.info = info
        self.metrics = metrics or ServeMetrics()
        self.tracker = tracker or ServiceTracker()
        self.batch_size = config.http.max_batch_size or info.batch_size
        self.settings = worker_settings(config, self.batch_size)
        self.min_workers, self.max_workers = config.http.min_workers, config.http.max_workers
        self.application = application_name(config.name)
        self.handle: Any = None
        self.closing = False
        self.in_flight = 0
        self.replicas: list[dict[str, Any]] = []  # the last states read from Ray Serve
        self.last_setup_error: str | None = None
        self.setup_failure: str | None = None  # Ray Serve gave up starting a replica: why
        self._failed_at = -math.inf  # when Ray Serve was last seen giving up on the replicas' setup
        self._attempt = 0  # the code version's suffix: a new one makes Ray Serve try setup() again
        self._retrying: asyncio.Task[None] | None = None  # a new attempt being deployed
        self._stale_until = -math.inf  # until Ray Serve shows the new attempt, its old verdict does not count
        self._read_at = self._answered_at = -math.inf  # when the replicas were read, a replica last answered
        self._numbers: dict[str, int] = {}
        self._counter = itertools.count(1)
        self._ray = contextlib.ExitStack()
        self._deploying = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()  # periodic: cancelled by stop()
        self._deploys: set[asyncio.Task[Any]] = set()  # redeploys: awaited by stop()

    # --- life ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect to Ray (blocking: nothing is served before it is up), deploy, watch."""
        try:
            self._connect()
            await self._in_thread(self._deploy)
        except BaseException:
            self._ray.close()  # a Ray this front started stops with it
            raise
        self._spawn(self._every(WATCH_SECONDS, self._watch))
        self._spawn(self._every(REPORT_SECONDS, self._report))
        LOG.info("serving %s on Ray Serve as application %r: batches of up to %d items, %d-%d replicas of %g CPU "
                 "and %g GPU, idle timeout %g s", self.info.target, self.application, self.batch_size,
                 self.min_workers, self.max_workers, self.config.ray.num_cpus, self.config.ray.num_gpus,
                 self.config.http.idle_timeout)

    async def stop(self) -> None:
        """Delete the application: Ray Serve lets each replica finish what it holds and run
        ``teardown()``; then wait (briefly) for this machine's replica processes to exit."""
        if self.closing:
            return
        self.closing = True
        for task in list(self._tasks):
            task.cancel()
        if self._deploys:  # a redeploy in its thread finishes first
            await asyncio.wait(list(self._deploys))
        try:
            await self._in_thread(self._delete)
        finally:
            self._report()
            self.tracker.finish()
            self._ray.close()

    def _connect(self) -> None:
        from tidal.engines.ray import _connection

        with _named_as_this_setting():
            self._ray.enter_context(_connection(self.config.ray.address))
        ray_serve().start(proxy_location="Disabled")  # the front is the ingress; kept as it is if Serve already runs
        self._warn_if_short_of_resources()

    def _warn_if_short_of_resources(self) -> None:
        """Say so when no node has what a replica asks for: not an error (Ray's autoscaler may
        add a GPU node on the first request), but every request waits for it meanwhile."""
        import ray

        resources = ray.cluster_resources()
        asked = {"GPU": self.config.ray.num_gpus, "CPU": self.config.ray.num_cpus}
        for kind, amount in asked.items():
            if amount > float(resources.get(kind, 0)):
                LOG.warning("%s.num_%ss is %g but the Ray cluster has %g %ss now: requests wait for a node with "
                            "them (Ray's autoscaler may add one) and get 504 after request_timeout; add such "
                            "nodes or lower num_%ss", WHERE, kind.lower(), amount, float(resources.get(kind, 0)),
                            kind, kind.lower())

    def _deploy(self) -> None:
        """Deploy (or update) the application with the current bounds. Returns once Ray Serve has
        it, without waiting for ``min_workers`` replicas (they start in the background, as the
        local backend's do; ``serve.run`` would wait forever for replicas the cluster cannot place)."""
        from ray.serve.api import RunTarget, _run_many

        from tidal.serve._rayreplica import ServiceReplica

        # a redeploy starts from the replicas there are: Ray resets the count to initial_replicas
        initial = min(max(len(self.replicas), self.min_workers), self.max_workers) if self.handle else None
        options = deployment_options(self.config, self.batch_size, self.min_workers, self.max_workers, initial)
        with _ray_deprecations_ignored():
            deployment = ray_serve().deployment(ServiceReplica, **options)
            # one code version for this front's life: a redeploy that changes the bounds only is
            # then an update of the autoscaling config, and keeps the replicas (and their models);
            # Ray 2.60 gives every imperative deploy a random version, which replaces them all
            deployment = deployment.options(version=f"{self.application}-{self._attempt}", _internal=True)
            application = deployment.bind(self.settings, self.config.http.request_timeout + WATCHDOG_GRACE_SECONDS)
            target = RunTarget(application, name=self.application, route_prefix=None)
            [self.handle] = _run_many([target], wait_for_applications_running=False)

    def _delete(self) -> None:
        self._read_replicas()
        pids = self._local_pids()
        with contextlib.suppress(Exception):  # the cluster may be gone already: nothing left to stop
            ray_serve().delete(self.application)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.05)

    def scale(self, min_workers: int | None = None, max_workers: int | None = None) -> None:
        """New replica bounds: checked now, applied by redeploying the application's autoscaling
        config (its replicas are kept) in the background."""
        low = self.min_workers if min_workers is None else min_workers
        high = self.max_workers if max_workers is None else max_workers
        dataclasses.replace(self.config.http, min_workers=low, max_workers=high).check()
        self.min_workers, self.max_workers = low, high
        self._spawn(self._redeploy(), self._deploys)

    async def _redeploy(self) -> None:
        async with self._deploying:
            if not self.closing:
                await self._in_thread(self._read_replicas)
                await self._in_thread(self._deploy)

    async def _retry_setup(self) -> bool:
        """After Ray Serve gave up starting replicas (setup() failed its retries), try again once
        ``SETUP_RETRY_SECONDS`` have passed, as the local backend does: a new code version makes
        Ray Serve start fresh replicas; returns once Ray has it. False while requests should
        still fail fast."""
        if self._retrying is None:
            if time.monotonic() - self._failed_at < SETUP_RETRY_SECONDS:
                return False
            self._attempt += 1
            self.setup_failure = None
            self._retrying = self._spawn(self._deploy_attempt(), self._deploys)
        await asyncio.shield(self._retrying)
        return True

    async def _deploy_attempt(self) -> None:
        try:
            await self._redeploy()
        finally:
            self._stale_until = time.monotonic() + STALE_VERDICT_SECONDS
            self._retrying = None

    # --- requests -----------------------------------------------------------------------

    async def predict(self, payload: Payload) -> Reply:
        if self.closing or self.handle is None:
            return error_reply(503, SHUTTING_DOWN)
        if self.setup_failure is not None and not self._ready_replicas() and not await self._retry_setup():
            wait = math.ceil(SETUP_RETRY_SECONDS - (time.monotonic() - self._failed_at))
            return error_reply(500, f"the model worker could not start: {self.setup_failure}; the next attempt is "
                               f"in at most {wait} s", {"Retry-After": str(max(1, wait))})
        cold = not self._warm()
        if cold:
            self.metrics.cold_starts.inc()
        self.in_flight += 1
        try:
            reply = await self._forward(payload)
            while reply is None:  # sent while Ray Serve still had the failed attempt: again, to the new one
                await asyncio.sleep(WATCH_SECONDS)
                reply = await self._forward(payload)
        finally:
            self.in_flight -= 1
        if cold and reply.status == 200:
            self.metrics.cold_start_seconds.observe(time.monotonic() - payload.received)
        return reply

    async def _forward(self, payload: Payload) -> Reply | None:
        """The replica's answer, or an error reply; None when Ray Serve refused the request for a
        setup attempt it has since been given a new one for (send it again)."""
        response = self.handle.remote(payload.kind, payload.data)
        task = asyncio.ensure_future(_awaited(response))
        deadline = payload.received + self.config.http.request_timeout
        try:
            while not task.done():
                remaining = deadline - time.monotonic()
                await asyncio.wait({task}, timeout=max(0.0, min(remaining, WATCH_SECONDS)))
                if task.done():
                    break
                if remaining <= WATCH_SECONDS:
                    return self._timed_out()
                if self.setup_failure is not None and not self._ready_replicas():  # Ray gave up starting one
                    return error_reply(500, f"the model worker could not start: {self.setup_failure}", log=True)
            answer = task.result()
        except Exception as error:
            if _unavailable(error) and time.monotonic() < min(self._stale_until, deadline - WATCH_SECONDS):
                return None
            return self._failed(error)
        finally:
            if not task.done():  # the replica drops its items, or its batch's result
                response.cancel()
                task.cancel()
                task.add_done_callback(_retrieved)  # Ray may still end it with RequestCancelledError
        if answer is None:  # cancelled in the replica: only a timeout does that
            return self._timed_out()
        self._answered_at = time.monotonic()
        status, body, batches = answer
        for items, requests in batches:
            self.metrics.observe_batch(items, requests)
        return Reply(status, body)

    def _timed_out(self) -> Reply:
        where = "waiting for a replica to start" if not self._ready_replicas() else "being processed"
        return error_reply(504, f"the request took longer than request_timeout ({self.config.http.request_timeout:g} "
                           f"s); it was {where}; retry, or raise request_timeout (--request-timeout)", log=True)

    def _failed(self, error: Exception) -> Reply:
        """A Ray error as the answer the local backend gives in the same case."""
        import ray

        ray_serve()
        from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError, RequestCancelledError

        cause = _first_line(error)
        if self.closing or isinstance(error, RequestCancelledError):
            return error_reply(503, SHUTTING_DOWN)
        if isinstance(error, BackPressureError):
            return error_reply(503, f"the service is busy: {self.config.http.queue_limit} requests are already "
                               "waiting for a replica (queue_limit); retry after a moment",
                               {"Retry-After": str(self._retry_after())})
        if isinstance(error, ray.exceptions.RayActorError):
            return error_reply(502, f"the model worker crashed ({cause}) while processing this request; Ray Serve "
                               "replaces its replica, retry the request (if it crashes the worker again, it is the "
                               "cause)", log=True)
        if isinstance(error, DeploymentUnavailableError):
            self._read_replicas()
            return error_reply(500, f"the model worker could not start: {self.setup_failure or cause}", log=True)
        LOG.exception("forwarding a request to Ray Serve failed")
        return error_reply(500, f"Ray Serve failed to answer: {cause}", log=True)

    def _retry_after(self) -> int:
        """Seconds until the requests ahead are likely answered: a cold start while none runs."""
        typical = self.metrics.cold_start_seconds
        seconds = typical.sum / typical.count if typical.count and not self._ready_replicas() else 1.0
        return max(1, min(math.ceil(seconds), math.ceil(self.config.http.request_timeout)))

    # --- replicas -----------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """``/readyz``: the replicas as Ray Serve reports them now (read synchronously, a few ms)."""
        problem = self._read_replicas()
        workers = [self._worker(replica) for replica in self.replicas]
        ready = any(worker["state"] == "ready" for worker in workers)
        state = ("warm" if ready else "starting" if workers else "unreachable" if problem
                 else "idle (scaled to zero)")
        failing = self.setup_failure is not None and not ready
        return {"ready": not (self.closing or problem or failing or self.handle is None), "state": state,
                "workers": workers, "waiting": self.in_flight, "min_workers": self.min_workers,
                "max_workers": self.max_workers, "idle_timeout": self.config.http.idle_timeout,
                "last_setup_error": self.last_setup_error, "backend": "ray", "application": self.application,
                **({"problem": problem} if problem else {})}

    def _worker(self, replica: dict[str, Any]) -> dict[str, Any]:
        replica_id = str(replica.get("replica_id"))
        number = self._numbers.setdefault(replica_id, next(self._counter))
        started = replica.get("start_time_s")
        return {"number": number, "pid": replica.get("pid"), "state": _worker_state(replica.get("state")),
                "replica": replica_id, "node_ip": replica.get("node_ip"),
                "age_seconds": round(time.time() - started, 3) if started else None}

    def _read_replicas(self) -> str | None:
        """Refresh :attr:`replicas` from Ray Serve; what went wrong, or None."""
        started = time.monotonic()
        try:
            deployment = self._deployment()
        except Exception as error:  # Ray gone: say so in /readyz rather than fail it
            return f"cannot read the replicas from Ray Serve: {_first_line(error)}"
        self.replicas = deployment.get("replicas") or []
        self._read_at = started
        failure = _setup_failure(deployment)
        if self._retrying is not None or time.monotonic() < self._stale_until:
            if failure is None and self._retrying is None:  # Ray Serve has moved on to the new attempt
                self._stale_until = -math.inf
            failure = None
        if failure is not None and self.setup_failure is None:
            self._failed_at = time.monotonic()
        self.setup_failure = failure
        self.last_setup_error = failure or self.last_setup_error
        return None

    def _deployment(self) -> dict[str, Any]:
        details = _serve_details()
        application = (details.get("applications") or {}).get(self.application) or {}
        return dict((application.get("deployments") or {}).get(DEPLOYMENT) or {})


    def _warm(self) -> bool:
        """A replica is ready: by the last read, or it answered since (the read is periodic)."""
        return bool(self._ready_replicas()) or self._answered_at > self._read_at

    def _ready_replicas(self) -> list[dict[str, Any]]:
        return [r for r in self.replicas if _worker_state(r.get("state")) == "ready"]

    def _local_pids(self) -> list[int]:
        """The replicas' process ids on this machine (a remote node's pid means nothing here)."""
        import ray

        here = {"127.0.0.1", "localhost", ray.util.get_node_ip_address()}
        return [int(r["pid"]) for r in self.replicas if r.get("pid") and r.get("node_ip") in here]

    async def _watch(self) -> None:
        await self._in_thread(self._read_replicas)

    def render_metrics(self) -> str:
        self._read_replicas()  # a scrape is rare: the replicas as they are now
        for state in ("starting", "ready", "stopping"):
            self.metrics.workers.set(sum(_worker_state(r.get("state")) == state for r in self.replicas), state)
        self.metrics.queue.set(self.in_flight)
        return self.metrics.render()

    def _report(self) -> None:
        totals = {"requests_total": self.metrics.requests.total(), "cold_starts": self.metrics.cold_starts.total(),
                  "workers": float(len(self._ready_replicas())), "queue": float(self.in_flight)}
        self.tracker.report(self.metrics.window.take(), totals)

    # --- background work ----------------------------------------------------------------

    async def _in_thread(self, call: Callable[[], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, call)

    def _spawn(self, coroutine: Coroutine[Any, Any, None],
               tasks: set[asyncio.Task[Any]] | None = None) -> asyncio.Task[None]:
        tasks = self._tasks if tasks is None else tasks
        task = asyncio.get_running_loop().create_task(coroutine)
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        task.add_done_callback(_log_failure)
        return task

    async def _every(self, seconds: float, action: Callable[[], Awaitable[None] | None]) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                result = action()
                if result is not None:
                    await result
            except Exception:  # a failed check must not stop the next one
                LOG.exception("periodic %s failed", getattr(action, "__name__", action))


def deployment_options(config: ServiceConfig, batch_size: int, min_workers: int, max_workers: int,
                       initial: int | None = None) -> dict[str, Any]:
    """Ray Serve's deployment options for a service (see the table in the module docstring);
    ``initial`` replicas: ``min_workers`` unless given."""
    http, ray = config.http, config.ray
    look_back = min(LOOK_BACK_LIMIT_SECONDS, max(0.2, http.idle_timeout / 2))
    initial = min_workers if initial is None else initial
    delay = max(0.0, http.idle_timeout - look_back)  # Ray's decision comes a look-back after the last request
    autoscaling = {"min_replicas": min_workers, "initial_replicas": initial, "max_replicas": max_workers,
                   "target_ongoing_requests": batch_size, "upscale_delay_s": 0.0,
                   "downscale_delay_s": delay, "downscale_to_zero_delay_s": delay,
                   "look_back_period_s": look_back, "metrics_interval_s": min(10.0, look_back / 2)}
    actor: dict[str, Any] = {"num_cpus": ray.num_cpus, "num_gpus": ray.num_gpus}
    if ray.runtime_env:
        actor["runtime_env"] = ray.runtime_env
    return {"name": DEPLOYMENT, "ray_actor_options": actor, "autoscaling_config": autoscaling,
            "max_ongoing_requests": BATCHES_AHEAD * batch_size, "max_queued_requests": max(1, http.queue_limit),
            "graceful_shutdown_wait_loop_s": 0.1, "graceful_shutdown_timeout_s": STOP_GRACE_SECONDS,
            "health_check_period_s": HEALTH_CHECK_SECONDS, "max_constructor_retry_count": CONSTRUCTOR_RETRIES,
            "logging_config": {"enable_access_log": False}}  # as the local backend: no line per request


def application_name(service: str) -> str:
    """A Ray Serve application name of this front's own: two fronts of one service never share
    (one's stop would delete the other's)."""
    return f"tidal-{re.sub(r'[^A-Za-z0-9_-]+', '-', service)}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def _check_address(address: str | None) -> None:
    """Fail in seconds on an address nothing listens at (as the Ray engine does)."""
    from tidal.engines.ray import _check_reachable

    with _named_as_this_setting():
        _check_reachable(address)


@contextlib.contextmanager
def _named_as_this_setting() -> Iterator[None]:
    """The Ray engine's connection errors, naming ``backend.ray`` (the setting to fix here)."""
    try:
        yield
    except ConfigError as error:
        raise ConfigError(str(error).replace("engine.ray", WHERE, 1)) from None


def ray_serve() -> Any:
    """``ray.serve``, imported without the deprecation warnings its pydantic models raise at
    import (Ray's to fix; a user of ``tidal serve`` can do nothing about them)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from ray import serve
    return serve


def _serve_details() -> dict[str, Any]:
    """Ray Serve's instance details: what ``serve.status()`` reads too, with each replica's state
    and pid, which ``serve.status()`` leaves out (Ray 2.60 has no public call that lists them)."""
    ray_serve()
    from ray.serve.context import _get_global_client

    client = _get_global_client()
    if client is None:
        raise RuntimeError("Ray Serve is not running on this cluster")
    return dict(client.get_serve_details())


@contextlib.contextmanager
def _ray_deprecations_ignored() -> Iterator[None]:
    """``metrics_interval_s`` is deprecated for environment variables Ray 2.60 does not read yet;
    it is the one way to push request metrics often enough for a short idle timeout."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*metrics_interval_s", category=DeprecationWarning)
        yield


async def _awaited(response: Any) -> Any:
    return await response


def _unavailable(error: Exception) -> bool:
    from ray.serve.exceptions import DeploymentUnavailableError

    return isinstance(error, DeploymentUnavailableError)


def _retrieved(task: asyncio.Future[Any]) -> None:
    """Read an abandoned request's outcome, so asyncio does not log it as never retrieved."""
    if not task.cancelled():
        task.exception()


def _setup_failure(deployment: dict[str, Any]) -> str | None:
    """Why Ray Serve gave up starting the deployment's replicas (the processor's setup error,
    from the traceback Ray keeps), or None while it has not."""
    status = str(getattr(deployment.get("status"), "value", deployment.get("status")))
    message = str(deployment.get("message") or "")
    # UNHEALTHY also follows a crashed replica's failed health check: that one is replaced
    if status not in ("UNHEALTHY", "DEPLOY_FAILED") or "failed to start" not in message:
        return None
    for line in message.splitlines():
        if "ProcessorError: " in line:
            return line.split("ProcessorError: ", 1)[1].strip()
    return _first_line(Exception(message))


def _worker_state(state: Any) -> str:
    name = str(getattr(state, "value", state))
    return WORKER_STATES.get(name, name.lower())


def _first_line(error: BaseException) -> str:
    lines = [line for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        LOG.error("the Ray backend's background task failed: %s", _first_line(task.exception()))  # type: ignore[arg-type]

