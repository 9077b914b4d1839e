"""The Ray engine: a job's partitions run on a Ray cluster (or a Ray started on this machine).

Each worker is a Ray actor that sets the processor up once (a model is loaded once per actor,
not once per partition) and streams the batches of each partition it is given back to the
driver as a Ray streaming generator. Actors rather than tasks, by measurement (2-CPU machine,
Ray 2.60, 4 batches per partition): a streaming actor call costs 1.9 ms per partition, a
streaming task 5.2 ms, and a task pays the processor's setup again unless it hides a model in a
process global; a fractional GPU stays bound to the actor that loaded the model.

The driver (``tidal map``) stays the single writer: it commits each batch as it arrives, so a
driver killed with ``kill -9`` loses only the batches in flight, and its actors die with it
(they are owned by the driver). It gives each actor at most ``inflight_per_worker`` partitions
and each partition at most ``RAY_BATCHES_AHEAD`` uncollected batches, so a job of any size
never floods the object store. An actor that dies (a segfault, the OOM killer, a lost node)
fails the partition it was running, keeping the batches it had sent, and is replaced; its
queued partitions go to the replacement, as with the local engine.

Example (``engine: {ray: {address: "ray://head:10001", num_gpus: 0.25}}`` in a config)::

    run_job(job, engine=RayEngine(address="ray://head:10001", num_gpus=0.25))
"""

from __future__ import annotations

import contextlib
import logging
import pickle
import socket
import sys
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tidal.engines._rayworker import PartitionWorker, SetupFailed
from tidal.engines.base import BatchMessage, Engine, Task, Work
from tidal.errors import ConfigError, ProcessorError
from tidal.settings import INFLIGHT_PER_WORKER, RAY_BATCHES_AHEAD
from tidal.status import PartitionStatus

POLL_SECONDS = 0.5
CONNECT_SECONDS = 5.0
WHERE = "engine.ray"


class RayEngine(Engine):
    """Runs partitions in ``concurrency`` Ray actors, each holding ``num_cpus``/``num_gpus``.

    ``address``: ``ray://head:10001`` (Ray Client), ``head:6379`` or ``auto``; none connects to
    ``$RAY_ADDRESS`` or a Ray already started here, else starts one for the job. ``concurrency``
    defaults to as many actors as the cluster's CPUs (and GPUs, when asked for) can hold.
    ``runtime_env`` is Ray's (``working_dir``, ``py_modules``, ``pip``, ``env_vars`` ...).
    """

    def __init__(
        self,
        address: str | None = None,
        num_cpus: float = 1.0,
        num_gpus: float = 0.0,
        concurrency: int | None = None,
        runtime_env: dict[str, Any] | None = None,
        inflight_per_worker: int = INFLIGHT_PER_WORKER,
    ) -> None:
        _require(num_cpus >= 0 and num_gpus >= 0, "num_cpus and num_gpus must be 0 or more (fractions allowed)")
        _require(concurrency is None or concurrency >= 1, f"concurrency must be at least 1, not {concurrency}")
        self.address = address
        self.num_cpus = float(num_cpus)
        self.num_gpus = float(num_gpus)
        self.concurrency = concurrency
        self.runtime_env = dict(runtime_env or {})
        self.inflight = max(1, inflight_per_worker)
        self.workers = concurrency or 0  # 0 until the cluster is known: as many as fit

    def run(self, work: Work, tasks: Iterable[Task]) -> Iterator[BatchMessage]:
        with _connection(self.address) as ray:
            self.workers = self.concurrency or self._fitting_actors(ray)
            pool = _ActorPool(ray, work, self._actor_options(), self.workers)
            finished = False
            try:
                yield from pool.drive(iter(tasks), self.inflight)
                finished = True
            finally:
                pool.close(graceful=finished)

    def describe(self) -> dict[str, Any]:
        return {"engine": type(self).__name__, "workers": self.workers or "auto", "address": self.address,
                "num_cpus": self.num_cpus, "num_gpus": self.num_gpus}

    def _actor_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus}
        if self.runtime_env:
            options["runtime_env"] = self.runtime_env
        return options

    def _fitting_actors(self, ray: Any) -> int:
        """As many actors as the cluster's resources hold; an error if it has none of a kind asked for."""
        resources = ray.cluster_resources()
        cpus, gpus = float(resources.get("CPU", 0)), float(resources.get("GPU", 0))
        _require(self.num_gpus <= gpus, f"num_gpus is {self.num_gpus} but the Ray cluster has {gpus:g} GPUs;"
                 " add GPU nodes or lower num_gpus")
        _require(self.num_cpus <= cpus, f"num_cpus is {self.num_cpus} but the Ray cluster has {cpus:g} CPUs")
        fits = [cpus / self.num_cpus] if self.num_cpus else [max(cpus, 1)]
        if self.num_gpus:
            fits.append(gpus / self.num_gpus)
        return max(1, int(min(fits)))


@dataclass
class _Slot:
    """One actor and the partitions it holds, each with its streaming generator, oldest first."""

    index: int
    actor: Any
    pending: deque[tuple[Task, Any]] = field(default_factory=deque)


class _ActorPool:
    """The driver's side: feeds partitions to actors, collects their batches, replaces the dead."""

    def __init__(self, ray: Any, work: Work, options: dict[str, Any], size: int) -> None:
        self.ray = ray
        self.actor_class = ray.remote(PartitionWorker).options(**options)
        # one copy in the object store for every actor (and every replacement)
        self.arguments = (ray.put(pickle.dumps(work)), import_folders(work))
        self.slots = [self._start(index) for index in range(size)]

    def _start(self, index: int) -> _Slot:
        return _Slot(index, self.actor_class.remote(*self.arguments))

    def drive(self, tasks: Iterator[Task], inflight: int) -> Iterator[BatchMessage]:
        """Keep every actor fed and yield batches as they arrive until every task is done."""
        exhausted = False
        while True:
            exhausted = exhausted or self._feed(tasks, inflight)
            busy = [slot for slot in self.slots if slot.pending]
            if not busy:
                return
            # only a slot's oldest call runs (an actor runs its calls one at a time)
            ready, _ = self.ray.wait([slot.pending[0][1] for slot in busy], num_returns=1, timeout=POLL_SECONDS)
            for slot in busy:
                if any(generator is slot.pending[0][1] for generator in ready):
                    yield from self._receive(slot)

    def _feed(self, tasks: Iterator[Task], inflight: int) -> bool:
        """Top up every actor to ``inflight`` partitions; True once ``tasks`` is exhausted."""
        while True:
            slot = min(self.slots, key=lambda s: len(s.pending))
            if len(slot.pending) >= inflight:
                return False
            task = next(tasks, None)
            if task is None:
                return True
            self._submit(slot, task)

    def _submit(self, slot: _Slot, task: Task) -> None:
        call = slot.actor.run.options(num_returns="streaming", _generator_backpressure_num_objects=RAY_BATCHES_AHEAD)
        slot.pending.append((task, call.remote(task)))

    def _receive(self, slot: _Slot) -> Iterator[BatchMessage]:
        """The next message of ``slot``'s running partition (its end, or its actor's death)."""
        generator = slot.pending[0][1]
        try:
            message = self.ray.get(next(generator))
        except StopIteration:  # the stream ended without an end message: only a dying actor does that
            yield from self._replace(slot, "its stream ended early")
            return
        except self.ray.exceptions.RuntimeEnvSetupError as error:
            raise ConfigError(f"{WHERE}.runtime_env: Ray could not set it up on a worker: {_first_lines(error)}"
                              ) from None
        except (self.ray.exceptions.RayActorError, self.ray.exceptions.ObjectLostError) as error:
            yield from self._replace(slot, _first_lines(error, 1))
            return
        if isinstance(message, SetupFailed):
            raise ProcessorError(message.reason)
        if message.end is not None:
            slot.pending.popleft()
        yield message

    def _replace(self, slot: _Slot, reason: str) -> Iterator[BatchMessage]:
        """An actor died: fail the partition it was running, restart it, give it the rest."""
        failed, _ = slot.pending.popleft()
        yield BatchMessage(failed.partition.id, [], (PartitionStatus.FAILED.value, (
            f"Ray worker died ({reason}) while running partition {failed.partition.id};"
            " run again with --retry-failed to retry it")))
        with contextlib.suppress(Exception):  # it may be only unreachable: make sure it is gone
            self.ray.kill(slot.actor)
        replacement = self._start(slot.index)
        for task, _ in slot.pending:
            self._submit(replacement, task)
        self.slots[slot.index] = replacement

    def close(self, graceful: bool) -> None:
        """Stop the actors: after their teardown when the job ended normally, at once otherwise."""
        if graceful:
            stops = [slot.actor.stop.remote() for slot in self.slots]
            with contextlib.suppress(Exception):
                self.ray.wait(stops, num_returns=len(stops), timeout=10.0)
        for slot in self.slots:
            with contextlib.suppress(Exception):
                self.ray.kill(slot.actor)


@contextlib.contextmanager
def _connection(address: str | None) -> Iterator[Any]:
    """Ray, connected: to an existing session as it is, else to ``address``; a Ray this call
    started (or connected to) is shut down at the end."""
    ray = _import_ray()
    if ray.is_initialized():
        yield ray
        return
    _check_reachable(address)
    try:
        ray.init(address=address, logging_level=logging.WARNING, configure_logging=False)
    except Exception as error:
        raise ConfigError(_connection_failure(address, error)) from None
    try:
        yield ray
    finally:
        ray.shutdown()


def _check_reachable(address: str | None) -> None:
    """Fail in seconds on an address nothing listens at (Ray itself retries for minutes)."""
    if not address or address == "auto" or ":" not in address:
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_SECONDS).close()
    except (OSError, ValueError) as error:
        raise ConfigError(_connection_failure(address, error)) from None


def _connection_failure(address: str | None, error: Exception) -> str:
    where = f"Ray at {address!r}" if address else "a local Ray"
    hint = ("check the address (ray://head:10001 for Ray Client, head:6379 from a cluster node) and that"
            " the cluster is up (`ray status` on the head)")
    if "auth" in type(error).__name__.lower() or "token" in str(error).lower():
        hint = ("the cluster uses token authentication: set RAY_AUTH_TOKEN (or copy the head's"
                " ~/.ray/auth_token here), or RAY_AUTH_MODE=disabled for a cluster started without it")
    return f"{WHERE}.address: cannot connect to {where}: {_first_lines(error)}; {hint}"


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError(f"{WHERE}: the Ray engine needs Ray: pip install 'tidal[ray]'") from None
    return ray


def import_folders(work: Work) -> tuple[str, ...]:
    """Folders the job's own modules were imported from here, put on ``sys.path`` by each actor
    (on this machine's Ray, as a spawned process inherits them; a remote cluster gets the code
    through ``runtime_env``, where folders that do not exist are ignored)."""
    folders = list(work.processor.paths)
    for name in (*work.processor.allowed, type(work.source).__module__):
        folder = _module_root(name.split(".")[0])
        if folder is not None:
            folders.append(folder)
    return tuple(dict.fromkeys(folders))


def _module_root(top_level: str) -> str | None:
    """The folder a top-level module or package was imported from (None: tidal, or not imported)."""
    module = sys.modules.get(top_level)
    file = getattr(module, "__file__", None)
    if top_level == "tidal" or not file:
        return None
    path = Path(file).parent
    return str(path.parent if path.name == top_level else path)


def _first_lines(error: BaseException, count: int = 3) -> str:
    """A Ray error's message without its trailing traceback."""
    lines = [line for line in str(error).splitlines() if line.strip()]
    return " ".join(lines[:count]) or type(error).__name__


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(f"{WHERE}: {message}")

