"""The training loop of one cycle: epochs of steps, an evaluation after each, early stopping.

Kept small on purpose, to be read: the trainer (``trainer.py``) builds the parts and owns the
run, checkpoints and signals; this module only trains.
"""

from __future__ import annotations

import contextlib
import math
import time
from typing import TYPE_CHECKING, Any, Literal

import torch

from tidal.errors import ConfigError, TrainingError
from tidal.train.batches import epoch_batches, shared_batches, to_device
from tidal.train.world import mean_loss

if TYPE_CHECKING:
    from tidal.train.trainer import Trainer


class StopTraining(Exception):
    """Raised inside the loop when a signal asked the training to stop (a checkpoint is saved)."""


class Loop:
    """How a cycle trains. Every argument is optional; a later cycle sets its own.

    ``freeze`` names submodules whose weights stay fixed (``"features"``; ``@`` for nesting:
    ``"features@0"``). ``patience`` stops the cycle early when ``monitor`` has not improved for
    that many epochs. ``keep_optimizer`` carries the previous cycle's optimizer state (moments)
    into this one; by default each cycle's optimizer starts fresh. ``mixed_precision="auto"``
    uses bfloat16 (or float16 with loss scaling) on a GPU and full precision on a CPU.
    ``threads``: the CPU threads torch uses (default: one per core); on a busy shared machine
    one thread can be many times faster than threads that wait on each other.
    """

    def __init__(self, epochs: int = 1, freeze: list[str] | None = None, clip_grad_norm: float | None = None,
                 patience: int | None = None, monitor: str = "val/loss", mode: Literal["min", "max"] = "min",
                 keep_optimizer: bool = False, mixed_precision: bool | Literal["auto"] = "auto",
                 device: str = "auto", log_every: int = 10,
                 scheduler_interval: Literal["epoch", "step"] = "epoch", threads: int | None = None) -> None:
        if epochs < 1:
            raise ConfigError(f"epochs: expected at least 1, got {epochs}")
        if patience is not None and patience < 1:
            raise ConfigError(f"patience: expected at least 1 epoch (or null for no early stopping), got {patience}")
        if log_every < 1:
            raise ConfigError(f"log_every: expected at least 1 step, got {log_every}")
        self.epochs = epochs
        self.freeze = list(freeze or [])
        self.clip_grad_norm = clip_grad_norm
        self.patience = patience
        self.monitor = monitor
        self.mode = mode
        self.keep_optimizer = keep_optimizer
        self.mixed_precision = mixed_precision
        self.device = device
        self.log_every = log_every
        self.scheduler_interval = scheduler_interval
        self.threads = threads

    def resolve_device(self) -> torch.device:
        """``auto``: the GPU when there is one, else the CPU (and its thread count, when set)."""
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        if self.device != "auto":
            return torch.device(self.device)
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")

    def autocast_dtype(self, device: torch.device) -> torch.dtype | None:
        """The mixed-precision type for ``device``, or None for full precision."""
        if self.mixed_precision is False or device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16

    def run(self, trainer: Trainer) -> None:
        """The cycle's remaining epochs (a resumed cycle starts where its checkpoint left it)."""
        progress = trainer.progress
        while progress.epoch < self.epochs and not trainer.stop_cycle:
            trainer.start_epoch()
            self.train_epoch(trainer)
            metrics = trainer.world.share(self.evaluate(trainer) if trainer.world.records else {})
            self.check_early_stop(trainer, metrics)
            trainer.end_epoch(metrics)

    def train_epoch(self, trainer: Trainer) -> None:
        progress = trainer.progress
        trainer.training_model.train()
        started = time.perf_counter()
        batches = shared_batches(trainer.splits.train, trainer.splits.batch_size, trainer.order_seed(),
                                 progress.batch, trainer.world.shard)
        for (inputs, targets), items in batches:
            inputs, targets = to_device(inputs, trainer.device), to_device(targets, trainer.device)
            value = self.step(trainer, inputs, targets)
            progress.record_step(value, items)
            trainer.after_step(value)
        trainer.epoch_seconds += time.perf_counter() - started

    def step(self, trainer: Trainer, inputs: Any, targets: Any) -> float:
        """One optimisation step; returns the batch's loss over every worker's share (refusing NaN
        before it reaches the weights: every worker sees the same value, so all stop together)."""
        with self.autocast(trainer.device):
            outputs = trainer.training_model(inputs)
            loss = trainer.compute_loss(outputs, targets)
        value, _ = mean_loss(trainer.world, loss.item(), _count(targets))
        if not math.isfinite(value):
            raise TrainingError(trainer.nan_message(value))
        trainer.optimizer.zero_grad(set_to_none=True)
        trainer.scaler.scale(loss).backward()
        if self.clip_grad_norm is not None:
            trainer.scaler.unscale_(trainer.optimizer)
            torch.nn.utils.clip_grad_norm_(trainer.model.parameters(), self.clip_grad_norm)
        trainer.scaler.step(trainer.optimizer)
        trainer.scaler.update()
        if trainer.scheduler is not None and self.scheduler_interval == "step":
            trainer.scheduler.step()
        return value

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager[Any]:
        dtype = self.autocast_dtype(device)
        return contextlib.nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)

    @torch.no_grad()
    def evaluate(self, trainer: Trainer) -> dict[str, float]:
        """The loss and every metric over the validation data (``val/...``), and the training
        epoch's mean loss (``train/epoch_loss``). With several workers, rank 0 evaluates alone
        (on the model itself, so nothing waits on the others) and shares the result."""
        results = {"train/epoch_loss": trainer.progress.epoch_loss()}
        data = trainer.splits.validation
        if data is None:
            return results
        trainer.model.eval()
        for metric in trainer.metrics:
            metric.reset()
        total, count = 0.0, 0
        trainer.confusion = None
        for inputs, targets in epoch_batches(data, trainer.splits.batch_size, None):
            inputs, targets = to_device(inputs, trainer.device), to_device(targets, trainer.device)
            with self.autocast(trainer.device):
                outputs = trainer.model(inputs)
                loss = trainer.compute_loss(outputs, targets)
            total += loss.item() * _count(targets)
            count += _count(targets)
            for metric in trainer.metrics:
                metric.update(outputs.float(), targets)
            trainer.add_to_confusion(outputs, targets)
        results["val/loss"] = total / max(count, 1)
        results.update({f"val/{metric.name}": metric.compute() for metric in trainer.metrics})
        return results

    def check_early_stop(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        """Count epochs without improvement of ``monitor``; stop the cycle after ``patience``."""
        if self.patience is None:
            return
        if self.monitor not in metrics:
            raise ConfigError(f"train_loop.monitor: {self.monitor!r} is not measured; "
                              f"measured: {', '.join(sorted(metrics))}")
        progress = trainer.progress
        value = metrics[self.monitor]
        better = progress.best is None or (value < progress.best if self.mode == "min" else value > progress.best)
        progress.best = value if better else progress.best
        progress.bad_epochs = 0 if better else progress.bad_epochs + 1
        if progress.bad_epochs >= self.patience:
            trainer.stop_cycle = True


def _count(targets: Any) -> int:
    return int(targets.shape[0]) if hasattr(targets, "shape") and targets.shape else 1
