"""Where a training stands (cycle, epoch, batch, step) and the random states: what a checkpoint
needs besides the weights to go on exactly where it stopped."""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch


@dataclass
class Progress:
    """The position of a training, and the sums of the epoch in progress."""

    cycle: int = 0
    epoch: int = 0  # epochs finished in this cycle
    batch: int = 0  # batches finished in this epoch
    step: int = 0  # optimisation steps since the training began
    total_epochs: int = 0  # epochs finished over every cycle
    loss_sum: float = 0.0  # of this epoch's steps, weighted by their items
    samples: int = 0
    best: float | None = None  # early stopping: the best value of the monitored metric this cycle
    bad_epochs: int = 0  # epochs since it improved

    def record_step(self, loss: float, count: int) -> None:
        self.batch += 1
        self.step += 1
        self.loss_sum += loss * count
        self.samples += count

    def epoch_loss(self) -> float:
        return self.loss_sum / self.samples if self.samples else float("nan")

    def next_epoch(self) -> None:
        self.epoch += 1
        self.total_epochs += 1
        self.batch, self.loss_sum, self.samples = 0, 0.0, 0

    def next_cycle(self) -> None:
        self.cycle += 1
        self.epoch = self.batch = self.bad_epochs = 0
        self.best = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def random_states() -> dict[str, Any]:
    """torch's (CPU and GPU), Python's and NumPy's random states, in types a safe load accepts."""
    kind, keys, position, has_gauss, cached = np.random.get_state()  # type: ignore[misc]
    states: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate(),
                              "numpy": [kind, [int(key) for key in keys], position, has_gauss, cached]}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_random_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    random.setstate(_tuples(states["python"]))
    kind, keys, position, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), position, has_gauss, cached))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def seed_everything(seed: int) -> None:
    """The same seed for torch, Python and NumPy (at every epoch's start, from the training's)."""
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)


def _tuples(value: Any) -> Any:
    """random.setstate wants tuples where a saved state may hold lists."""
    return tuple(_tuples(item) for item in value) if isinstance(value, (list, tuple)) else value
