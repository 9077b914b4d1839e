"""The trainer: builds a config's parts by role, runs its cycles, checkpoints, resumes, tracks.

Roles: the optimizer is built with the model's parameters, the scheduler with the optimizer.
Across cycles the weights carry over (a cycle naming another model gets the weights whose names
and shapes match); datasets, loss, metrics and callbacks are rebuilt only when a cycle changes
them; the optimizer starts fresh each cycle unless its loop says ``keep_optimizer``.

Example::

    from tidal.train import fit

    report = fit("digits.hjson")                  # a tracked run, checkpoints each epoch
    report = fit("digits.hjson", resume=True)     # after a kill: on from the last checkpoint
"""

from __future__ import annotations

import contextlib
import json
import signal
import tempfile
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tidal.config.spec import ObjectSpec, build, resolve
from tidal.errors import ConfigError, TrainingError
from tidal.status import RunStatus
from tidal.tracking.run import Run
from tidal.tracking.store import Store
from tidal.tracking.stores import open_store
from tidal.train import checkpoint as checkpoints
from tidal.train.batches import derived_seed, epoch_batches
from tidal.train.callbacks import Callback, RunLogger
from tidal.train.checkpoint import Checkpoint
from tidal.train.config import CycleConfig, TrainConfig, load_train_config
from tidal.train.datasets import Splits, as_splits
from tidal.train.images import sample_grid
from tidal.train.loop import Loop, StopTraining
from tidal.train.metrics import Metric
from tidal.train.progress import Progress, random_states, restore_random_states, seed_everything
from tidal.train.submodules import freeze
from tidal.train.world import SingleProcess, World

TRAIN_PROJECT = "train"
SIGNAL_EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143}


@dataclass
class TrainReport:
    """How a training ended: its run, the last epoch's metrics, the last checkpoint."""

    run_id: str
    train_id: str
    status: RunStatus
    metrics: dict[str, float]
    steps: int
    seconds: float
    checkpoint: str | None
    resumed_from: str | None = None
    stopped_by: str | None = None  # the signal that stopped it
    checkpoint_seconds: list[float] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return SIGNAL_EXIT_CODES.get(self.stopped_by or "", 1) if self.status is not RunStatus.COMPLETED else 0


def fit(config: str | Path | TrainConfig, *, resume: bool = False, checkpoint: str | None = None,
        store: Store | None = None, project: str = TRAIN_PROJECT) -> TrainReport:
    """Train what a config names, tracked as a run in ``store`` (default: the configured one).

    ``resume``: go on from the training's last checkpoint (same config, any earlier run);
    ``checkpoint``: from this one (``RUN/checkpoints/step-….pt``), even under a changed config.
    """
    config = config if isinstance(config, TrainConfig) else load_train_config(config)
    owned = store is None
    store = store or open_store()
    try:
        return Trainer(config, store, project=project, resume=resume, checkpoint=checkpoint).fit()
    finally:
        if owned:
            store.close()


@dataclass
class Start:
    """A checkpoint a training goes on from, and its state (read and checked)."""

    checkpoint: Checkpoint
    state: dict[str, Any]


def find_start(store: Store, config: TrainConfig, *, resume: bool = False,
               checkpoint: str | None = None) -> Start | None:
    """``checkpoint`` (``RUN/checkpoints/step-….pt``), else with ``resume`` the training's latest
    one, read; None to start from the beginning. A checkpoint that cannot be read is refused,
    naming the one before it."""
    if checkpoint:
        chosen, fallback = Checkpoint.parse(checkpoint), None
    elif resume:
        found = checkpoints.candidates(store, config.train_id)
        if not found:
            print(f"tidal train: no checkpoint of training {config.train_id} yet; starting from the "
                  "beginning", flush=True)
            return None
        chosen, fallback = found[0], (found[1] if len(found) > 1 else None)
    else:
        return None
    state = checkpoints.load(store, chosen, fallback, str(config.path))
    cycle = Progress(**state["progress"]).cycle
    if cycle >= len(config.cycles):
        raise TrainingError(f"checkpoint {chosen} is of cycle {cycle}, but {config.path} has "
                            f"{len(config.cycles)} cycles")
    return Start(chosen, state)


def open_run(store: Store, config: TrainConfig, project: str, start: Start | None) -> Run:
    """The run a training records to: its canonical config as params, tagged with the training
    id (how ``--resume`` finds its checkpoints) and the checkpoint it went on from."""
    model = config.cycles[0].specs["model"]
    name = config.name or (model.target.rsplit(".", 1)[-1] if model else "training")
    tags = {"train": config.train_id, **({"resumed_from": str(start.checkpoint)} if start else {})}
    run = Run(store, project=project, name=name, kind="train", tags=tags,
              config={"train_id": config.train_id, "config_file": str(config.path), **config.canonical})
    run.log_params(_flatten(config.canonical))
    return run


class Trainer:
    """One training of a config: its parts, progress and run. Callbacks read its attributes."""

    model: nn.Module
    training_model: nn.Module  # what the steps call: the model, or its data-parallel wrapper
    optimizer: torch.optim.Optimizer
    splits: Splits
    loop: Loop
    cycle: CycleConfig
    run: Run

    def __init__(self, config: TrainConfig, store: Store, *, project: str = TRAIN_PROJECT, resume: bool = False,
                 checkpoint: str | None = None, world: World | None = None) -> None:
        self.config = config
        self.world = world or SingleProcess()
        self.store = store
        self.project = project
        self.resume = resume
        self.checkpoint_reference = checkpoint
        self.progress = Progress()
        self.phases: list[dict[str, Any]] = []
        self.scheduler: Any = None
        self.scaler: Any = None
        self.metrics: list[Metric] = []
        self.callbacks: list[Callback] = []
        self.confusion: torch.Tensor | None = None
        self.device = torch.device("cpu")
        self.stop_cycle = False
        self.stop_signal: str | None = None
        self.resumed_from: Checkpoint | None = None
        self.last_checkpoint: Checkpoint | None = None
        self.last_metrics: dict[str, float] = {}
        self.epoch_seconds = 0.0
        self.checkpoint_seconds = 0.0
        self.checkpoint_times: list[float] = []
        self.throughput = 0.0
        self._built: dict[str, tuple[Any, Any]] = {}  # key -> (canonical spec, object), carried across cycles
        self._model_canonical: Any = None
        self._states: dict[str, Any] | None = None  # a checkpoint being resumed, until it is applied
        self._random_to_restore: dict[str, Any] | None = None

    # -- the whole training -------------------------------------------------------------------

    def fit(self) -> TrainReport:
        """Run every cycle (from the checkpoint when resuming) and record it all as one run."""
        started = time.perf_counter()
        start = find_start(self.store, self.config, resume=self.resume, checkpoint=self.checkpoint_reference)
        self.begin_from(start)
        self.run = open_run(self.store, self.config, self.project, start)
        status, error = RunStatus.FAILED, None
        try:
            with self._signals():
                self._train()
            status = RunStatus.COMPLETED
        except StopTraining:
            status = RunStatus.INTERRUPTED
        except BaseException as raised:
            error = "".join(traceback.format_exception(raised))
            raise
        finally:
            self._end(status, error)
        return self._report(status, time.perf_counter() - started)

    def _train(self) -> None:
        first = self.progress.cycle
        for cycle in self.config.cycles[first:]:
            self._start_cycle(cycle)
            if cycle.index == first:
                for callback in self.callbacks:
                    callback.on_train_start(self)
            self.loop.run(self)
            self._end_cycle()
        if self.world.records:
            self._save_model()

    def _end(self, status: RunStatus, error: str | None) -> None:
        self.end_callbacks(status)
        self.run.finish(status, error, stats=self.stats())

    def end_callbacks(self, status: RunStatus) -> None:
        for callback in self.callbacks:
            with contextlib.suppress(Exception):  # a failing callback must not hide why the training ended
                callback.on_train_end(self, status.value)

    def _report(self, status: RunStatus, seconds: float) -> TrainReport:
        return TrainReport(self.run.id, self.config.train_id, status, dict(self.last_metrics), self.progress.step,
                           seconds, str(self.last_checkpoint) if self.last_checkpoint else None,
                           str(self.resumed_from) if self.resumed_from else None, self.stop_signal,
                           list(self.checkpoint_times))

    def stats(self) -> dict[str, Any]:
        return {"train_id": self.config.train_id, "step": self.progress.step, "phases": self.phases,
                "metrics": self.last_metrics, "checkpoint": str(self.last_checkpoint or "")}

    # -- cycles ---------------------------------------------------------------------------------

    def _start_cycle(self, cycle: CycleConfig) -> None:
        self.cycle = cycle
        self.loop = self._build(cycle.specs["train_loop"])
        self.device = self.loop.resolve_device()
        seed_everything(derived_seed(self.config.seed, cycle.index))  # new parts start alike on every run
        self.splits = self._carried("datasets", cycle, lambda spec: as_splits(self._build(spec), spec.where))
        self.model = self._model_for(cycle)
        trainable = freeze(self.model, self.loop.freeze, f"{cycle.origin}: train_loop.freeze")
        if not trainable:
            raise ConfigError(f"{cycle.origin}: train_loop.freeze fixes every parameter of the model; "
                              "leave something to train")
        self.training_model = self.world.prepare(self.model)  # after freezing: a wrapper syncs what trains
        self.loss = self._carried("loss", cycle, self._build)
        self.metrics = self._carried("metrics", cycle, lambda specs: [self._build(spec) for spec in specs])
        user = self._carried("callbacks", cycle, lambda specs: [self._build(spec) for spec in specs])
        # rank 0 alone records and calls back: what a callback decides reaches the others (end_epoch)
        logger = RunLogger() if not self.callbacks else self.callbacks[0]
        self.callbacks = [logger, *user] if self.world.records else []
        self._build_optimizer(cycle)
        self._apply_checkpoint()
        self.stop_cycle = self.loop.patience is not None and self.progress.bad_epochs >= self.loop.patience
        if not any(phase["cycle"] == cycle.index for phase in self.phases):
            self.phases.append({"cycle": cycle.index, "name": f"cycle {cycle.index}", "start_step": self.progress.step})
        for callback in self.callbacks:
            callback.on_cycle_start(self)

    def _end_cycle(self) -> None:
        self.phases[-1]["end_step"] = self.progress.step
        for callback in self.callbacks:
            callback.on_cycle_end(self)
        if self.cycle.index + 1 < len(self.config.cycles):
            self.progress.next_cycle()

    def _build(self, spec: ObjectSpec | None) -> Any:
        assert spec is not None
        return build(spec, self.config.allowed)

    def _carried(self, key: str, cycle: CycleConfig, builder: Any) -> Any:
        """The object the previous cycle built for ``key``, or a new one when this cycle changed it."""
        canonical = cycle.canonical[key]
        built = self._built.get(key)
        if built is None or built[0] != canonical:
            spec = cycle.specs[key] if key in cycle.specs else cycle.lists[key]
            built = (canonical, builder(spec))
            self._built[key] = built
        return built[1]

    def _model_for(self, cycle: CycleConfig) -> nn.Module:
        """The model carried over, or the cycle's own model with the weights that fit copied in."""
        canonical = cycle.canonical["model"]
        if self._model_canonical == canonical:
            return self.model.to(self.device)
        spec = cycle.specs["model"]
        model = self._build(spec)
        if not isinstance(model, nn.Module):
            raise ConfigError(f"{cycle.origin}: {spec.where if spec else 'model'}: expected a torch.nn.Module, "
                              f"got {type(model).__name__}")
        if self._model_canonical is not None:
            _copy_matching_weights(self.model, model)
        self._model_canonical = canonical
        return model.to(self.device)

    def _build_optimizer(self, cycle: CycleConfig) -> None:
        previous = getattr(self, "optimizer", None)
        spec = cycle.specs["optimizer"]
        assert spec is not None
        optimizer = _with_first(spec, self.model.parameters(), self.config.allowed)
        if self.loop.keep_optimizer and previous is not None:
            _carry_optimizer_state(previous, optimizer, cycle.origin)
        self.optimizer = optimizer
        scheduler = cycle.specs["scheduler"]
        self.scheduler = _with_first(scheduler, optimizer, self.config.allowed) if scheduler else None
        dtype = self.loop.autocast_dtype(self.device)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=dtype is torch.float16)

    # -- epochs and steps (called by the loop) --------------------------------------------------------

    def start_epoch(self) -> None:
        """Seed this epoch's randomness (or restore it, resuming mid-epoch)."""
        if self._random_to_restore is not None:
            restore_random_states(self._random_to_restore)
            self._random_to_restore = None
        else:
            # each worker its own dropout masks (one process: as before, no rank in the seed)
            ranked = (self.world.rank,) if self.world.size > 1 else ()
            seed_everything(derived_seed(self.config.seed + 1, self.cycle.index, self.progress.epoch, *ranked))
        self.epoch_seconds = 0.0

    def order_seed(self) -> int:
        """The seed of this epoch's batch order."""
        return derived_seed(self.config.seed, self.cycle.index, self.progress.epoch)

    def after_step(self, loss: float) -> None:
        for callback in self.callbacks:
            callback.on_step_end(self, loss)
        if self.stop_signal:
            self.save_checkpoint()
            raise StopTraining(self.stop_signal)

    def end_epoch(self, metrics: dict[str, float]) -> None:
        self.throughput = self.progress.samples / self.epoch_seconds if self.epoch_seconds else 0.0
        self.progress.next_epoch()
        if self.scheduler is not None and self.loop.scheduler_interval == "epoch":
            self._step_scheduler(metrics)
        self.last_metrics = metrics
        self.world.report(metrics, self.save_checkpoint() if self.world.records else None)
        for callback in self.callbacks:
            callback.on_epoch_end(self, metrics)
        self.stop_cycle = self.world.share(self.stop_cycle)
        if self.stop_signal:
            raise StopTraining(self.stop_signal)

    def _step_scheduler(self, metrics: dict[str, float]) -> None:
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step(metrics.get(self.loop.monitor, metrics["train/epoch_loss"]))
        else:
            self.scheduler.step()

    def compute_loss(self, outputs: Any, targets: Any) -> torch.Tensor:
        """The loss of a batch; a loss that refuses the shapes it gets says which they were."""
        try:
            loss = self.loss(outputs, targets)
        except (RuntimeError, ValueError, IndexError, TypeError) as error:
            spec = self.cycle.specs["loss"]
            raise TrainingError(
                f"{self.cycle.origin}: {spec.where if spec else 'loss'}: the loss failed on the model's outputs of "
                f"shape {_shape(outputs)} and the targets of shape {_shape(targets)} (step {self.progress.step}, "
                f"cycle {self.cycle.index}): {error}; make the model's outputs fit the targets (e.g. num_outputs) "
                "or choose a loss for them") from error
        if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
            raise TrainingError(f"{self.cycle.origin}: loss: expected one number (a 0-d tensor), got "
                                f"{_shape(loss)}; use reduction='mean'")
        return loss

    def nan_message(self, value: float) -> str:
        where = (f"step {self.progress.step + 1} (cycle {self.cycle.index}, epoch {self.progress.epoch}, "
                 f"batch {self.progress.batch})")
        last = (f"the last good checkpoint is {self.last_checkpoint}: lower the learning rate or set "
                f"train_loop clip_grad_norm, then `tidal train {self.config.path} --checkpoint {self.last_checkpoint}`"
                if self.last_checkpoint else "no checkpoint was saved yet: lower the learning rate or set "
                "train_loop clip_grad_norm, and start again")
        return f"the loss is {value} at {where}; the training stopped; {last}"

    def add_to_confusion(self, outputs: Any, targets: Any) -> None:
        """Count (target, prediction) pairs when outputs are class scores and targets class indices."""
        if not (isinstance(outputs, torch.Tensor) and isinstance(targets, torch.Tensor)):
            return
        if outputs.dim() != 2 or targets.dim() != 1 or targets.dtype not in (torch.int64, torch.int32):
            return
        classes = outputs.shape[1]
        pairs = targets.long().cpu() * classes + outputs.argmax(dim=1).cpu()
        counts = torch.bincount(pairs, minlength=classes * classes).reshape(classes, classes)
        self.confusion = counts if self.confusion is None else self.confusion + counts

    def learning_rate(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def samples_per_second(self) -> float:
        return self.throughput

    def sample_inputs(self) -> Any:
        """A grid of the first validation (else training) batch's inputs, when they are images."""
        data = self.splits.validation or self.splits.train
        inputs, _ = next(epoch_batches(data, self.splits.batch_size, None))
        return sample_grid(inputs)

    # -- checkpoints ----------------------------------------------------------------------------

    def save_checkpoint(self) -> Checkpoint:
        state = {"train_id": self.config.train_id, "progress": self.progress.as_dict(), "phases": self.phases,
                 "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
                 "scaler": self.scaler.state_dict(), "random": random_states(), "metrics": self.last_metrics}
        self.last_checkpoint, self.checkpoint_seconds = checkpoints.save(self.run, state, self.progress.step)
        self.checkpoint_times.append(self.checkpoint_seconds)
        return self.last_checkpoint

    def begin_from(self, start: Start | None) -> None:
        """Take the position of the checkpoint gone on from; its weights load as its cycle starts."""
        if start is None:
            return
        self.resumed_from = start.checkpoint
        self._states = start.state
        self.progress = Progress(**start.state["progress"])
        self.phases = list(start.state["phases"])
        self.last_metrics = dict(start.state.get("metrics") or {})

    def _apply_checkpoint(self) -> None:
        """Load the resumed checkpoint into the parts the cycle just built (once)."""
        state, self._states = self._states, None
        if state is None:
            return
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            if self.scheduler is not None and state["scheduler"] is not None:
                self.scheduler.load_state_dict(state["scheduler"])
            self.scaler.load_state_dict(state["scaler"])
        except (RuntimeError, ValueError, KeyError) as error:
            raise TrainingError(f"checkpoint {self.resumed_from} does not fit cycle {self.cycle.index} of "
                                f"{self.config.path}: {error}") from error
        self._random_to_restore = state["random"] if self.progress.batch else None

    def _save_model(self) -> None:
        """The final weights, and beside them the config and metrics they came from."""
        folder = Path(tempfile.mkdtemp(prefix="tidal-model-"))
        weights, described = folder / "model.pt", folder / "config.json"
        torch.save(self.model.state_dict(), weights)
        described.write_text(json.dumps({"train_id": self.config.train_id, "config_file": str(self.config.path),
                                         "model": self.cycle.canonical["model"], "config": self.config.canonical,
                                         "metrics": self.last_metrics}, indent=2, default=str))
        self.run.log_artifact(weights, "model/model.pt")
        self.run.log_artifact(described, "model/config.json")
        self.run.flush()
        for path in (weights, described):
            path.unlink()
        folder.rmdir()

    # -- signals --------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        """SIGTERM and Ctrl-C stop after the current step with a checkpoint; a second one at once."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {number: signal.signal(number, self._on_signal) for number in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)

    def _on_signal(self, number: int, frame: Any) -> None:
        if self.stop_signal:
            raise KeyboardInterrupt
        self.stop_signal = signal.Signals(number).name


def _with_first(spec: ObjectSpec, first: Any, allowed: list[str]) -> Any:
    """Build ``spec`` with ``first`` as its first argument: the role wiring (parameters, optimizer)."""
    target = resolve(spec, allowed)
    kwargs = {key: build(value, allowed) if isinstance(value, ObjectSpec) else value
              for key, value in spec.kwargs.items()}
    try:
        return target(first, **kwargs)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{spec.where}: {spec.target} refused its arguments: {error}") from error


def _carry_optimizer_state(previous: torch.optim.Optimizer, optimizer: torch.optim.Optimizer, origin: str) -> None:
    """The previous optimizer's state (moments, step counts) under this cycle's hyperparameters."""
    if type(previous) is not type(optimizer):
        raise ConfigError(f"{origin}: train_loop.keep_optimizer: the optimizer changed from "
                          f"{type(previous).__name__} to {type(optimizer).__name__}; its state cannot carry over")
    hyperparameters = [dict(group) for group in optimizer.param_groups]
    optimizer.load_state_dict(previous.state_dict())
    for group, wanted in zip(optimizer.param_groups, hyperparameters, strict=True):
        group.update({key: value for key, value in wanted.items() if key != "params"})


def _copy_matching_weights(source: nn.Module, target: nn.Module) -> None:
    theirs = source.state_dict()
    mine = target.state_dict()
    mine.update({name: value for name, value in theirs.items()
                 if name in mine and mine[name].shape == value.shape})
    target.load_state_dict(mine)


def _shape(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"{tuple(value.shape)} ({str(value.dtype).removeprefix('torch.')})"
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(_shape(item) for item in value) + ")"
    return type(value).__name__


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """The canonical config as flat params: ``cycles.1.optimizer.lr``, so runs compare key by key."""
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in _flatten(item, f"{prefix}{key}.").items()}
    if isinstance(value, list) and value:
        return {k: v for index, item in enumerate(value) for k, v in _flatten(item, f"{prefix}{index}.").items()}
    return {prefix.rstrip("."): value}

