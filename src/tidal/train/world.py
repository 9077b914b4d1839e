"""The processes training one model together, as the trainer sees them: its *world*.

One process trains alone (:class:`SingleProcess`, ``tidal train`` on this machine); with Ray
Train, ``N`` workers each take their share of every batch and average their gradients
(``tidal.train.ray``). The trainer asks its world, never Ray or ``torch.distributed``, so the
loop and the checkpoints are the same code in both:

- every batch is split (:meth:`World.shard`), and each step's loss summed over the workers
  (:meth:`World.sum`), so every worker counts the same steps, samples and epoch loss as one
  process would on the whole batch;
- rank 0 alone evaluates, records to the run and writes checkpoints; what it decides (the
  metrics, a callback ending the cycle) reaches every worker (:meth:`World.share`);
- after each checkpoint the engine is told (:meth:`World.report`), and a restarted worker group
  asks it where to go on from (:meth:`World.restored`).
"""

from __future__ import annotations

from typing import TypeVar

from torch import nn

from tidal.train.checkpoint import Checkpoint

T = TypeVar("T")


class World:
    """The plug-in point for where a training runs; every method must be given."""

    rank = 0  # this process's place among the workers; rank 0 records
    size = 1  # how many workers train together

    def shard(self, indices: list[int]) -> list[int]:
        """This worker's part of a batch's item indices."""
        raise NotImplementedError

    def prepare(self, model: nn.Module) -> nn.Module:
        """The module the training steps call: ``model``, or a wrapper that averages its gradients."""
        raise NotImplementedError

    def sum(self, values: list[float]) -> list[float]:
        """``values`` summed over every worker (each worker gets the sums)."""
        raise NotImplementedError

    def share(self, value: T) -> T:
        """Rank 0's ``value``, on every worker (picklable values)."""
        raise NotImplementedError

    def report(self, metrics: dict[str, float], checkpoint: Checkpoint | None) -> None:
        """An epoch ended, with ``checkpoint`` saved (rank 0's; None elsewhere): every worker calls it."""
        raise NotImplementedError

    def restored(self) -> Checkpoint | None:
        """The checkpoint an engine that restarted the workers kept from the previous attempt."""
        raise NotImplementedError

    @property
    def records(self) -> bool:
        """Whether this worker records to the run (only one does)."""
        return self.rank == 0


class SingleProcess(World):
    """One process trains on whole batches: ``tidal train`` with the local engine."""

    def shard(self, indices: list[int]) -> list[int]:
        return indices

    def prepare(self, model: nn.Module) -> nn.Module:
        return model

    def sum(self, values: list[float]) -> list[float]:
        return values

    def share(self, value: T) -> T:
        return value

    def report(self, metrics: dict[str, float], checkpoint: Checkpoint | None) -> None:
        """Nothing to tell: the trainer itself is the engine."""

    def restored(self) -> Checkpoint | None:
        return None


def mean_loss(world: World, loss: float, count: int) -> tuple[float, int]:
    """A batch's loss and item count over every worker's share (the mean weighted by shares)."""
    if world.size == 1:
        return loss, count
    total, items = world.sum([loss * count, float(count)])
    return (total / items if items else float("nan")), int(items)

