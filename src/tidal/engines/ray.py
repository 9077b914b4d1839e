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
never floods the object store. An actor that dies on a live node (a segfault, the OOM killer)
fails the partition it was running, keeping the batches it had sent, and is replaced, as with
the local engine. An actor lost with its node (the node died or cannot be reached) is not the
partition's doing: the partition runs again on another actor, skipping the items it had sent
(a warning says so; at most ``LOST_NODE_RETRIES`` times, then it fails). Partitions go only to
actors Ray has placed and started, so the work of a lost node moves to the nodes left while its
replacements wait for room; when no live node can hold an actor at all (the only nodes with
the resources the actors ask for died), the job stops with an error saying what is missing,
its results so far saved for a rerun to resume.

Example (``engine: {ray: {address: "ray://head:10001", num_gpus: 0.25}}`` in a config)::

    run_job(job, engine=RayEngine(address="ray://head:10001", num_gpus=0.25))

``resources`` asks each actor for Ray custom resources too, e.g. ``{"accelerator_type:A100":
0.01}`` or a resource only some nodes were started with (``ray start --resources``).
"""

from __future__ import annotations

import collections
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
from tidal.types import ItemKey, PartitionId

POLL_SECONDS = 0.5
CONNECT_SECONDS = 5.0
LOST_NODE_RETRIES = 3  # runs again of one partition whose worker was lost with its node, before it fails
START_ATTEMPTS = 3  # an actor that dies before it has started is replaced this often, then the job stops
WHERE = "engine.ray"
LOG = logging.getLogger("tidal.engines")


class RayEngine(Engine):
    """Runs partitions in ``concurrency`` Ray actors, each holding ``num_cpus``/``num_gpus``.

    ``address``: ``ray://head:10001`` (Ray Client), ``head:6379`` or ``auto``; none connects to
    ``$RAY_ADDRESS`` or a Ray already started here, else starts one for the job. ``concurrency``
    defaults to as many actors as the cluster's CPUs (and GPUs, when asked for) can hold.
    ``runtime_env`` is Ray's (``working_dir``, ``py_modules``, ``pip``, ``env_vars`` ...).
    ``resources``: Ray custom resources each actor holds besides its CPUs and GPUs.
    """

    def __init__(
        self,
        address: str | None = None,
        num_cpus: float = 1.0,
        num_gpus: float = 0.0,
        concurrency: int | None = None,
        runtime_env: dict[str, Any] | None = None,
        inflight_per_worker: int = INFLIGHT_PER_WORKER,
        resources: dict[str, float] | None = None,
    ) -> None:
        _require(num_cpus >= 0 and num_gpus >= 0, "num_cpus and num_gpus must be 0 or more (fractions allowed)")
        for name, amount in (resources or {}).items():
            _require(name not in ("CPU", "GPU"), f"resources: give {name} as num_{name.lower()}s")
            _require(amount >= 0, f"resources.{name} must be 0 or more (fractions allowed), not {amount}")
        _require(concurrency is None or concurrency >= 1, f"concurrency must be at least 1, not {concurrency}")
        self.address = address
        self.num_cpus = float(num_cpus)
        self.num_gpus = float(num_gpus)
        self.concurrency = concurrency
        self.runtime_env = dict(runtime_env or {})
        self.inflight = max(1, inflight_per_worker)
        self.resources = {name: float(amount) for name, amount in (resources or {}).items()}
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
                "num_cpus": self.num_cpus, "num_gpus": self.num_gpus, "resources": self.resources}

    def _actor_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus}
        if self.resources:
            options["resources"] = self.resources
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
        for name, amount in self.resources.items():
            have = float(resources.get(name, 0))
            _require(amount <= have, f"resources.{name} is {amount:g} but the Ray cluster has {have:g} {name}")
            if amount:
                fits.append(have / amount)
        return max(1, int(min(fits)))


@dataclass
class _Slot:
    """One actor and the partitions it holds, each with its streaming generator, oldest first.

    ``started`` answers (with the actor's node) once Ray has placed the actor and it has set the
    processor up; only then is it given partitions, so a replacement Ray cannot place yet (its
    node's resources died with the node) holds no work hostage.
    """

    index: int
    actor: Any
    started: Any
    node: str | None = None
    failed_starts: int = 0
    pending: deque[tuple[Task, Any]] = field(default_factory=deque)
    received: set[ItemKey] = field(default_factory=set)  # keys of the running partition's rows so far


class _ActorPool:
    """The driver's side: feeds partitions to started actors, collects their batches, replaces the
    dead, runs again the partitions of actors lost with their node."""

    def __init__(self, ray: Any, work: Work, options: dict[str, Any], size: int) -> None:
        self.ray = ray
        self.actor_class = ray.remote(PartitionWorker).options(**options)
        self.request = _request(options)
        # one copy in the object store for every actor (and every replacement)
        self.arguments = (ray.put(pickle.dumps(work)), import_folders(work))
        self.returned: deque[Task] = deque()  # partitions to run first: those lost workers held
        self.retries: collections.Counter[PartitionId] = collections.Counter()
        self.nodes = {node["NodeID"] for node in ray.nodes() if node["Alive"]}  # those the job started with
        self.slots = [self._start(index) for index in range(size)]

    def _start(self, index: int, failed_starts: int = 0) -> _Slot:
        actor = self.actor_class.remote(*self.arguments)
        return _Slot(index, actor, actor.node.remote(), failed_starts=failed_starts)

    def drive(self, tasks: Iterator[Task], inflight: int) -> Iterator[BatchMessage]:
        """Keep every started actor fed and yield batches as they arrive until every task is done."""
        exhausted = False
        while True:
            self._check_starts()
            exhausted = self._feed(tasks, inflight) or exhausted
            busy = [slot for slot in self.slots if slot.pending]
            if not busy:
                if exhausted and not self.returned:
                    return
                self._check_placeable()
            # only a slot's oldest call runs (an actor runs its calls one at a time)
            running = [slot.pending[0][1] for slot in busy]
            starting = [slot.started for slot in self.slots if slot.node is None]
            ready, _ = self.ray.wait(running + starting, num_returns=1, timeout=POLL_SECONDS)
            for slot in busy:
                if any(generator is slot.pending[0][1] for generator in ready):
                    yield from self._receive(slot)

    def _check_starts(self) -> None:
        """Note the actors that have started; replace those that died before they could."""
        starting = [slot for slot in self.slots if slot.node is None]
        if not starting:
            return
        ready, _ = self.ray.wait([slot.started for slot in starting], num_returns=len(starting), timeout=0)
        for slot in starting:
            if any(reference is slot.started for reference in ready):
                self._started(slot)

    def _started(self, slot: _Slot) -> None:
        try:
            slot.node = self.ray.get(slot.started)
        except self.ray.exceptions.RuntimeEnvSetupError as error:
            raise _runtime_env_error(error) from None
        except self.ray.exceptions.RayActorError as error:
            # placed on a node that died before it could run, or killed while setting up
            if slot.failed_starts + 1 >= START_ATTEMPTS:
                raise ProcessorError(f"{WHERE}: a Ray worker died {START_ATTEMPTS} times while starting (setting"
                                     f" the processor up): {_first_lines(error)}") from None
            with contextlib.suppress(Exception):
                self.ray.kill(slot.actor)
            self.slots[slot.index] = self._start(slot.index, slot.failed_starts + 1)

    def _feed(self, tasks: Iterator[Task], inflight: int) -> bool:
        """Top up every started actor to ``inflight`` partitions, those of lost workers first;
        True once ``tasks`` is exhausted."""
        started = [slot for slot in self.slots if slot.node is not None]
        while started:
            slot = min(started, key=lambda s: len(s.pending))
            if len(slot.pending) >= inflight:
                return False
            task = self.returned.popleft() if self.returned else next(tasks, None)
            if task is None:
                return True
            self._submit(slot, task)
        return False

    def _submit(self, slot: _Slot, task: Task) -> None:
        call = slot.actor.run.options(num_returns="streaming", _generator_backpressure_num_objects=RAY_BATCHES_AHEAD)
        slot.pending.append((task, call.remote(task)))

    def _receive(self, slot: _Slot) -> Iterator[BatchMessage]:
        """The next message of ``slot``'s running partition (its end, or its actor's death)."""
        generator = slot.pending[0][1]
        try:
            message = self.ray.get(next(generator))
        except StopIteration:  # the stream ended without an end message: only a dying actor does that
            yield from self._replace(slot, "its stream ended early", lost_node=False)
            return
        except self.ray.exceptions.RuntimeEnvSetupError as error:
            raise _runtime_env_error(error) from None
        except (self.ray.exceptions.RayActorError, self.ray.exceptions.ObjectLostError,
                self.ray.exceptions.NodeDiedError) as error:
            yield from self._replace(slot, _first_lines(error, 1), self._lost_with_node(slot, error))
            return
        if isinstance(message, SetupFailed):
            raise ProcessorError(message.reason)
        slot.received.update(row.key for row in message.rows)
        if message.end is not None:
            slot.pending.popleft()
            slot.received = set()
        yield message

    def _lost_with_node(self, slot: _Slot, error: Exception) -> bool:
        """Whether the actor was lost with its node (or cut off from it) rather than died on a live
        node: unreachable (the node's raylet is gone, before Ray declares the node dead, about
        15 s), its objects lost, or its node no longer alive in Ray's node table. (An actor that
        crashed on a busy live node is rarely reported unreachable: the partition then runs again,
        crashes again, and fails after ``LOST_NODE_RETRIES``.)"""
        exceptions = self.ray.exceptions
        if isinstance(error, (exceptions.ActorUnavailableError, exceptions.ObjectLostError, exceptions.NodeDiedError)):
            return True
        return not any(node["NodeID"] == slot.node and node["Alive"] for node in self.ray.nodes())

    def _replace(self, slot: _Slot, reason: str, lost_node: bool) -> Iterator[BatchMessage]:
        """An actor died: its partition runs again elsewhere when its node was lost (not the
        partition's doing), else it fails; the partitions it held go back to the pool."""
        failed, _ = slot.pending.popleft()
        partition = failed.partition.id
        if lost_node and self.retries[partition] < LOST_NODE_RETRIES:
            self.retries[partition] += 1
            LOG.warning("partition %s: its Ray worker was lost with its node (%s); running it again on another"
                        " worker, skipping the %d items it sent (retry %d of %d)", partition, reason,
                        len(slot.received), self.retries[partition], LOST_NODE_RETRIES)
            self.returned.append(Task(failed.partition, failed.skip | slot.received))
        else:
            lost = f", lost with its node {LOST_NODE_RETRIES + 1} times" if lost_node else ""
            yield BatchMessage(partition, [], (PartitionStatus.FAILED.value, (
                f"Ray worker died ({reason}) while running partition {partition}{lost};"
                " run again with --retry-failed to retry it")))
        self.returned.extend(task for task, _ in slot.pending)
        with contextlib.suppress(Exception):  # it may be only unreachable: make sure it is gone
            self.ray.kill(slot.actor)
        self.slots[slot.index] = self._start(slot.index)

    def _check_placeable(self) -> None:
        """No actor runs and work waits: fail if no live node of the cluster could ever hold one
        (the nodes that had what the actors ask for died), rather than wait for Ray forever."""
        nodes = self.ray.nodes()
        if any(node["Alive"] and _fits(self.request, node["Resources"]) for node in nodes):
            return
        missing = [name for name, amount in self.request.items()
                   if not any(node["Alive"] and node["Resources"].get(name, 0) >= amount for node in nodes)]
        lost = [f"{node['NodeID'][:12]} ({node['NodeManagerAddress']})" for node in nodes
                if not node["Alive"] and node["NodeID"] in self.nodes]
        died = f"; nodes lost during the job: {', '.join(lost)}" if lost else ""
        raise ConfigError(
            f"{WHERE}: no live node of the Ray cluster can hold a worker, which asks for {_describe(self.request)}:"
            f" none has {' and '.join(repr(name) for name in missing) or 'all of it at once'}{died}. The results so"
            " far are saved: run the job again to resume it once the cluster has such a node")

    def close(self, graceful: bool) -> None:
        """Stop the actors: after their teardown when the job ended normally, at once otherwise."""
        if graceful:
            stops = [slot.actor.stop.remote() for slot in self.slots if slot.node is not None]
            with contextlib.suppress(Exception):
                self.ray.wait(stops, num_returns=len(stops), timeout=10.0)
        for slot in self.slots:
            with contextlib.suppress(Exception):
                self.ray.kill(slot.actor)


def _request(options: dict[str, Any]) -> dict[str, float]:
    """What one actor asks a node for, in the names of Ray's node table."""
    request = {"CPU": options.get("num_cpus", 0.0), "GPU": options.get("num_gpus", 0.0),
               **options.get("resources", {})}
    return {name: float(amount) for name, amount in request.items() if amount}


def _fits(request: dict[str, float], resources: dict[str, float]) -> bool:
    return all(resources.get(name, 0) >= amount for name, amount in request.items())


def _describe(request: dict[str, float]) -> str:
    return ", ".join(f"{amount:g} {name}" for name, amount in request.items()) or "nothing"


def _runtime_env_error(error: Exception) -> ConfigError:
    return ConfigError(f"{WHERE}.runtime_env: Ray could not set it up on a worker: {_first_lines(error)}")


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

