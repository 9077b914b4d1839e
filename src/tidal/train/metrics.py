"""Metrics computed over the validation data each epoch.

A metric accumulates batch by batch (``update``) and gives one number per epoch (``compute``);
its ``name`` is the key it is logged under (``val/<name>``).
"""

from __future__ import annotations

import torch


class Metric:
    """Base class: accumulate over an epoch's batches, then compute one number."""

    name = "metric"

    def reset(self) -> None:
        """Forget what was accumulated (called before each evaluation)."""
        raise NotImplementedError

    def update(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        """Accumulate one batch of the model's outputs and the targets."""
        raise NotImplementedError

    def compute(self) -> float:
        """The metric over every batch since :meth:`reset`."""
        raise NotImplementedError


class Accuracy(Metric):
    """The share of items whose highest output is the target class (``top_k``: among the k highest)."""

    name = "accuracy"

    def __init__(self, top_k: int = 1) -> None:
        self.top_k = top_k
        if top_k != 1:
            self.name = f"top{top_k}_accuracy"
        self.reset()

    def reset(self) -> None:
        self.correct = 0
        self.total = 0

    def update(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        best = outputs.topk(self.top_k, dim=-1).indices
        self.correct += int((best == targets.unsqueeze(-1)).any(dim=-1).sum())
        self.total += int(targets.numel())

    def compute(self) -> float:
        return self.correct / self.total if self.total else float("nan")


class MeanAbsoluteError(Metric):
    """The mean absolute difference between outputs and targets (regression)."""

    name = "mae"

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.sum = 0.0
        self.count = 0

    def update(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        self.sum += float((outputs.float() - targets.float()).abs().sum())
        self.count += int(targets.numel())

    def compute(self) -> float:
        return self.sum / self.count if self.count else float("nan")
