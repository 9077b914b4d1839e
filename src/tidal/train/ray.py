"""Data-parallel training on Ray Train: ``tidal train CONFIG --engine ray --workers N``.

The same trainer and loop run in ``N`` workers of Ray Train's ``TorchTrainer`` (gloo on CPUs,
NCCL on GPUs). Each batch of the epoch's order is split between the workers, whose gradients
``DistributedDataParallel`` averages, so the training counts the same steps and epochs as on one
machine, and its checkpoints are the local trainer's (a training begun on Ray can go on locally,
and the other way round).

Who records: the driver (``tidal train``) opens the run, with its config, command and code, and
ends it, since it alone outlives every worker and sees how the whole went (a worker that died, a
signal, Ray's error); **rank 0 records into that run** what happens inside the training: metrics
per step, images, a checkpoint each epoch, the final model. Rank 0 rather than the driver from
Ray's reports because ``ray.train.report`` is a barrier across the workers: per-step metrics
would stall the training, and a checkpoint would be written twice (to Ray's storage, then copied
into the run). So the workers must reach the store: on this machine always; on a cluster of
several machines the store is a tidal server or PostgreSQL and the artifacts are on S3 (an
embedded store with a remote cluster is refused, naming this).

Ray Train's checkpointing: after an epoch's checkpoint, rank 0 reports to Ray a small checkpoint
naming it (``tidal-checkpoint.json``; at most one report per 2 s, Ray's controller poll, see
``RayWorld.report``); when a worker dies, Ray restarts the group (``FailureConfig(max_failures)``)
and the new workers go on from it, in the same run. When the
driver or the cluster dies, ``--resume`` finds the last checkpoint through the run's tags, as on
one machine. Checkpoints are taken at each epoch's end: a stop loses the epoch in progress.

Example::

    from tidal.train.ray import RayTrain

    report = RayTrain(workers=2).fit("digits.hjson")
    report = RayTrain(workers=2).fit("digits.hjson", resume=True)   # after the driver died
"""

from __future__ import annotations

import importlib
import json
import math
import os
import signal
import socket
import tempfile
import threading
import time
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import distributed, nn

from tidal import settings
from tidal.config.spec import import_paths
from tidal.engines.ray import _connection
from tidal.errors import ConfigError, TidalError, TrainingError
from tidal.status import RunStatus
from tidal.tracking.run import Run
from tidal.tracking.store import Store
from tidal.tracking.stores import open_store
from tidal.train.checkpoint import Checkpoint
from tidal.train.config import TrainConfig, load_train_config
from tidal.train.trainer import TRAIN_PROJECT, Start, Trainer, TrainReport, find_start, open_run
from tidal.train.world import World

T = TypeVar("T")
REFERENCE = "tidal-checkpoint.json"  # what Ray Train keeps of a checkpoint: where it is in the run
STORAGE_FOLDER = "ray-train"  # under $TIDAL_HOME: Ray Train's records of its checkpoints
WORKER_ENVIRONMENT = ("TIDAL_TRACKING_URI", "TIDAL_TOKEN", "TIDAL_ARTIFACTS", "TIDAL_S3_ENDPOINT_URL",
                      "TIDAL_ALLOW", "TIDAL_SPOOL")
WAIT_SECONDS = 0.2
DEFAULT_REPORT_SECONDS = 2.0  # Ray Train's controller polls its workers this often (its default)


@dataclass
class RayTrain:
    """Train on ``workers`` Ray Train workers, each holding ``cpus_per_worker`` and ``gpus_per_worker``.

    ``address``: the Ray cluster (``ray://head:10001``, ``head:6379``); none connects to
    ``$RAY_ADDRESS`` or a Ray already started here, else starts one for the training.
    ``max_failures``: how many times a worker group that failed (a worker killed, out of memory)
    is restarted from the last checkpoint. ``storage_path``: Ray Train's storage, shared by every
    node (default ``$TIDAL_HOME/ray-train``; it holds only the names of tidal's checkpoints).
    """

    workers: int = 2
    address: str | None = None
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    max_failures: int = 0
    storage_path: str | None = None

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ConfigError(f"--workers {self.workers}: Ray Train needs at least 1 worker")
        if self.cpus_per_worker <= 0 or self.gpus_per_worker < 0:
            raise ConfigError("cpus_per_worker must be above 0 and gpus_per_worker 0 or more (fractions allowed)")
        if self.max_failures < -1:
            raise ConfigError(f"max_failures {self.max_failures}: use 0 or more restarts (-1: without limit)")

    def fit(self, config: str | Path | TrainConfig, *, store_uri: str | None = None, project: str = TRAIN_PROJECT,
            resume: bool = False, checkpoint: str | None = None) -> TrainReport:
        """Train what ``config`` names on Ray, recorded in the store at ``store_uri`` (default: the
        configured one; the workers open it too); ``resume``/``checkpoint`` as for ``tidal.train.fit``."""
        config = config if isinstance(config, TrainConfig) else load_train_config(config)
        self._check_store_reachable(store_uri)
        store = open_store(store_uri)
        try:
            start = find_start(store, config, resume=resume, checkpoint=checkpoint)
            run = open_run(store, config, project, start)
            return self._fit_in(run, config, start, store)
        finally:
            store.close()

    def _check_store_reachable(self, store_uri: str | None) -> None:
        """Workers on other machines cannot reach this machine's SQLite file: say so before starting."""
        uri = store_uri or settings.tracking_uri() or "sqlite"
        host = (self.address or "").removeprefix("ray://").rpartition(":")[0]
        if uri.startswith("sqlite") and host and not _is_this_machine(host):
            raise ConfigError(f"--address {self.address}: the training's rank-0 worker records to the store, and "
                              "a cluster's workers cannot reach this machine's embedded store; use a tidal server "
                              "(--store http://host:port) or PostgreSQL, with TIDAL_ARTIFACTS=s3://bucket/prefix")

    def _fit_in(self, run: Run, config: TrainConfig, start: Start | None, store: Store) -> TrainReport:
        """Run the workers; the driver ends the run with how the whole went."""
        started = time.perf_counter()
        status, error, stopped_by = RunStatus.FAILED, None, None
        try:
            with _connection(self.address):
                _until_signal(lambda: _quietly(self._trainer(config, run.id, start).fit))
            status = RunStatus.COMPLETED
        except _Stopped as stop:
            status, stopped_by = RunStatus.INTERRUPTED, stop.signal_name
        except Exception as raised:
            error = "".join(traceback.format_exception(raised))
            raise _ours(raised) from None
        finally:
            run.finish(status, error)
        return _report(run, config, status, start, store, time.perf_counter() - started, stopped_by)

    def _trainer(self, config: TrainConfig, run_id: str, start: Start | None) -> Any:
        from ray.train.v2.api.config import CheckpointConfig, FailureConfig, LoggingConfig, RunConfig, ScalingConfig
        from ray.train.v2.torch.torch_trainer import TorchTrainer  # Train V2 (ray.train.torch picks it at run time)

        resources = {"CPU": self.cpus_per_worker} | ({"GPU": self.gpus_per_worker} if self.gpus_per_worker else {})
        storage = self.storage_path or str(settings.home().resolve() / STORAGE_FOLDER)
        return TorchTrainer(
            _train_worker,
            train_loop_config={"config": config, "run_id": run_id, "start": start},
            scaling_config=ScalingConfig(num_workers=self.workers, use_gpu=self.gpus_per_worker > 0,
                                         resources_per_worker=resources),
            run_config=RunConfig(name=f"{config.train_id}-{run_id}", storage_path=storage,
                                 failure_config=FailureConfig(max_failures=self.max_failures),
                                 checkpoint_config=CheckpointConfig(num_to_keep=2),
                                 worker_runtime_env={"env_vars": _worker_environment()},
                                 logging_config=LoggingConfig(log_level="WARNING")))


class RayWorld(World):
    """The workers of one Ray Train run, through ``torch.distributed`` and ``ray.train``."""

    def __init__(self) -> None:
        import ray.train

        context = ray.train.get_context()
        self.rank = context.get_world_rank()
        self.size = context.get_world_size()
        self.reported_at = -math.inf
        self.report_seconds = float(os.environ.get("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S") or DEFAULT_REPORT_SECONDS)
        nccl = distributed.is_initialized() and distributed.get_backend() == "nccl"
        self.device = torch.device("cuda", torch.cuda.current_device()) if nccl else torch.device("cpu")

    def shard(self, indices: list[int]) -> list[int]:
        # a batch smaller than the workers: the idle ones repeat its first item, as DistributedSampler pads
        return indices[self.rank::self.size] or indices[:1]

    def prepare(self, model: nn.Module) -> nn.Module:
        if self.size == 1:
            return model
        device = next(model.parameters()).device
        return nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    def sum(self, values: list[float]) -> list[float]:
        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        distributed.all_reduce(tensor)
        return [float(value) for value in tensor.tolist()]

    def share(self, value: T) -> T:
        if self.size == 1:
            return value
        box = [value]
        distributed.broadcast_object_list(box, src=0, device=self.device)
        return box[0]

    def report(self, metrics: dict[str, float], checkpoint: Checkpoint | None) -> None:
        """Tell Ray Train where the epoch's checkpoint is, at most once per controller poll.

        ``ray.train.report`` waits until the controller has taken the previous report, and it looks
        every ``RAY_TRAIN_HEALTH_CHECK_INTERVAL_S`` (2 s): reporting each of many short epochs would
        stall each one (measured: 0.14 s epochs took 1.8 s). So a restart may go on from a checkpoint
        up to that much older; ``--resume`` still finds every epoch's."""
        import ray.train

        now = time.monotonic()
        if not self.share(now - self.reported_at >= self.report_seconds):  # rank 0's clock decides for all
            return
        self.reported_at = now
        with tempfile.TemporaryDirectory(prefix="tidal-ray-checkpoint-") as folder:
            if checkpoint is None:
                ray.train.report(dict(metrics))
                return
            (Path(folder) / REFERENCE).write_text(json.dumps({"checkpoint": str(checkpoint)}))
            ray.train.report(dict(metrics), checkpoint=ray.train.Checkpoint.from_directory(folder))

    def restored(self) -> Checkpoint | None:
        import ray.train

        kept = ray.train.get_checkpoint()
        if kept is None:
            return None
        with kept.as_directory() as folder:
            return Checkpoint.parse(json.loads((Path(folder) / REFERENCE).read_text())["checkpoint"])


class WorkerTrainer(Trainer):
    """The trainer inside one Ray Train worker: it goes on from Ray's checkpoint after a restart,
    else from the driver's; rank 0 records into the driver's run, which the driver ends."""

    def __init__(self, config: TrainConfig, store: Store, *, run_id: str, start: Start | None,
                 world: World) -> None:
        super().__init__(config, store, world=world)
        self.run_id = run_id
        self.start = start

    def train(self) -> None:
        """Train from where Ray's or the driver's checkpoint says; rank 0 records into the run."""
        restored = self.world.restored()
        start = find_start(self.store, self.config, checkpoint=str(restored)) if restored else self.start
        self.begin_from(start)
        if self.world.records:
            self.run = Run(self.store, resume=self.run_id, capture=False)
        status = RunStatus.FAILED
        try:
            self._train()
            status = RunStatus.COMPLETED
        finally:
            if self.world.records:
                self.end_callbacks(status)
                self.run.set_stats(self.stats())
                self.run.flush()


def _train_worker(settings_: dict[str, Any]) -> None:
    """What each Ray Train worker runs."""
    config: TrainConfig = settings_["config"]
    with import_paths(config.paths):
        for module in config.imports:  # their @tidal.register names
            importlib.import_module(module)
        store = open_store()
        try:
            WorkerTrainer(config, store, run_id=settings_["run_id"], start=settings_["start"],
                          world=RayWorld()).train()
        finally:
            store.close()


def _is_this_machine(host: str) -> bool:
    """Whether ``host`` is an address of this machine (a socket can be bound to it)."""
    try:
        with socket.socket() as probe:
            probe.bind((host, 0))
    except OSError:
        return False
    return True


def _worker_environment() -> dict[str, str]:
    """The driver's store settings, so that the workers open the same store."""
    environment = {name: os.environ[name] for name in WORKER_ENVIRONMENT if os.environ.get(name)}
    return environment | {"TIDAL_HOME": str(settings.home().resolve())}


class _Stopped(Exception):
    def __init__(self, signal_name: str) -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name


def _until_signal(work: Any) -> Any:
    """``work()`` in a thread, while SIGTERM and Ctrl-C stop the driver (the workers die with it)
    instead of Ray's handler, which would exit 0 and leave the run unended."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["result"] = work()
        except BaseException as error:  # handed to the main thread
            outcome["error"] = error

    thread = threading.Thread(target=target, name="tidal-ray-train", daemon=True)
    if threading.current_thread() is not threading.main_thread():
        target()
    else:
        received: list[str] = []

        def on_signal(number: int, frame: Any) -> None:
            received.append(signal.Signals(number).name)

        previous = {number: signal.signal(number, on_signal) for number in (signal.SIGTERM, signal.SIGINT)}
        try:
            thread.start()
            while thread.is_alive() and not received:
                thread.join(WAIT_SECONDS)
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)
        if received:
            raise _Stopped(received[0])
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def _quietly(work: Any) -> Any:
    # Ray Train deep-copies Ray Data's context, each of whose deprecated fields warns as it is set
    # (Ray 2.60): Ray's own business, which a user can do nothing about
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return work()


def _ours(error: BaseException) -> BaseException:
    """A worker's tidal error as itself (its message and exit code); Ray's, with ours on top."""
    failures = getattr(error, "worker_failures", None) or {}
    for failure in [*failures.values(), error]:
        cause = failure
        while cause is not None and not isinstance(cause, TidalError):
            cause = getattr(cause, "cause", None) or cause.__cause__
        if isinstance(cause, TidalError):
            return cause
    if isinstance(error, TidalError):
        return error
    causes = [f"rank {rank}: {type(failure).__name__}: {failure}" for rank, failure in sorted(failures.items())]
    return TrainingError(f"the Ray Train run failed: {'; '.join(causes) or _first_lines(error)}; the last "
                         "epoch's checkpoint is kept: `tidal train CONFIG --engine ray --resume` goes on from it "
                         "(or set max_failures to let Ray restart the workers)")


def _first_lines(error: BaseException, count: int = 4) -> str:
    lines = [line for line in str(error).splitlines() if line.strip()]
    return " ".join(lines[:count]) or type(error).__name__


def _report(run: Run, config: TrainConfig, status: RunStatus, start: Start | None, store: Store,
            seconds: float, stopped_by: str | None) -> TrainReport:
    """The report of the whole training, from what rank 0 recorded in the run."""
    stats = store.get_run(run.id).get("stats") or {}
    state = start.state if start else {}
    metrics = dict(stats.get("metrics") or state.get("metrics") or {})
    steps = int(stats.get("step") or state.get("progress", {}).get("step", 0))
    checkpoint = stats.get("checkpoint") or (str(start.checkpoint) if start else None)
    saves = [value for _, value, _ in store.metrics(run.id, ["checkpoint/seconds"]).get("checkpoint/seconds", [])]
    return TrainReport(run.id, config.train_id, status, metrics, steps, seconds, checkpoint,
                       str(start.checkpoint) if start else None, stopped_by, saves)


__all__ = ["RayTrain", "RayWorld", "WorkerTrainer"]
