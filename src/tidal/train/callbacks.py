"""Callbacks: user code called at the points of a training, and the one that tracks it.

A callback overrides only the hooks it needs; the base class's hooks do nothing (unlike other
plug-in points, each hook here is optional). It reads the trainer's state (``trainer.model``,
``trainer.progress``, ``trainer.run``...) and may end the current cycle with
``trainer.stop_cycle = True``. Named in a config under ``callbacks``::

    class PrintLoss(tidal.train.Callback):
        def on_epoch_end(self, trainer, metrics):
            print(trainer.progress.epoch, metrics["val/loss"])
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from tidal.train.images import confusion_image

if TYPE_CHECKING:
    from tidal.train.trainer import Trainer


class Callback:
    """Hooks of a training, each a no-op here."""

    def on_train_start(self, trainer: Trainer) -> None:
        """Before the first step (also of a resumed training)."""

    def on_cycle_start(self, trainer: Trainer) -> None:
        """After the cycle's optimizer is built and its submodules frozen."""

    def on_step_end(self, trainer: Trainer, loss: float) -> None:
        """After each optimisation step, with its loss."""

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        """After each epoch's evaluation (``val/...`` and ``train/epoch_loss``) and checkpoint."""

    def on_cycle_end(self, trainer: Trainer) -> None:
        """After a cycle's last epoch (or its early stop)."""

    def on_train_end(self, trainer: Trainer, status: str) -> None:
        """When the training ends: ``completed``, ``failed`` or ``interrupted``."""


class RunLogger(Callback):
    """Tracks a training with no code: loss and learning rate every ``log_every`` steps, the
    epoch's metrics, throughput, the cycle as a phase, a sample grid and the confusion matrix."""

    def __init__(self) -> None:
        self.last_time = time.perf_counter()
        self.last_step = 0

    def on_train_start(self, trainer: Trainer) -> None:
        grid = trainer.sample_inputs()
        if grid is not None and not trainer.resumed_from:
            trainer.run.log_image("samples", grid, step=0)

    def on_cycle_start(self, trainer: Trainer) -> None:
        trainer.run.log_metric("cycle", trainer.cycle.index, step=trainer.progress.step)
        self._stats(trainer)

    def on_step_end(self, trainer: Trainer, loss: float) -> None:
        step = trainer.progress.step
        if step % trainer.loop.log_every:
            return
        now = time.perf_counter()
        values = {"train/loss": loss, "lr": trainer.learning_rate()}
        if now > self.last_time and step > self.last_step:
            values["train/steps_per_second"] = (step - self.last_step) / (now - self.last_time)
        self.last_time, self.last_step = now, step
        trainer.run.log_metrics(values, step=step)

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        extra = {"epoch": trainer.progress.total_epochs, "lr": trainer.learning_rate(),
                 "train/samples_per_second": trainer.samples_per_second(),
                 "checkpoint/seconds": trainer.checkpoint_seconds}
        trainer.run.log_metrics({**metrics, **extra}, step=trainer.progress.step)
        self._stats(trainer, metrics)

    def on_cycle_end(self, trainer: Trainer) -> None:
        if trainer.confusion is not None:
            key = f"confusion/cycle{trainer.cycle.index}"
            trainer.run.log_image(key, confusion_image(trainer.confusion.numpy()), step=trainer.progress.step)

    def _stats(self, trainer: Trainer, metrics: dict[str, float] | None = None) -> None:
        progress = trainer.progress
        stats: dict[str, Any] = {"train_id": trainer.config.train_id, "cycle": trainer.cycle.index,
                                 "cycles": len(trainer.config.cycles), "epoch": progress.epoch,
                                 "epochs": trainer.loop.epochs, "step": progress.step,
                                 "phases": trainer.phases, "checkpoint": str(trainer.last_checkpoint or "")}
        trainer.run.set_stats(stats | ({"metrics": metrics} if metrics else {}))

