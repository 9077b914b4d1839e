"""Batches of an epoch, in an order that depends only on a seed: what makes resume exact.

A DataLoader with ``shuffle=True`` draws its order from the global random state, so a run resumed
mid-epoch cannot see the batches it would have seen. Here the epoch's permutation comes from its
own generator seeded per (training seed, cycle, epoch), and a resumed epoch skips the batches
already done without loading them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sized
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset


def epoch_batches(dataset: Dataset[Any], batch_size: int, seed: int | None, skip: int = 0) -> Iterator[Any]:
    """The epoch's batches, shuffled by ``seed`` (None: in order), the first ``skip`` left out."""
    assert isinstance(dataset, Sized)
    size = len(dataset)
    order = torch.randperm(size, generator=torch.Generator().manual_seed(seed)) if seed is not None \
        else torch.arange(size)
    indices = order.tolist()
    batches = [indices[start:start + batch_size] for start in range(skip * batch_size, size, batch_size)]
    return iter(DataLoader(dataset, batch_sampler=batches, num_workers=0))


def to_device(value: Any, device: torch.device) -> Any:
    """Tensors (also inside tuples, lists and dicts) moved to ``device``."""
    if isinstance(value, torch.Tensor):
        return value.to(device, non_blocking=True)
    if isinstance(value, (list, tuple)):
        return type(value)(to_device(item, device) for item in value)
    if isinstance(value, dict):
        return {key: to_device(item, device) for key, item in value.items()}
    return value


def derived_seed(seed: int, *parts: int) -> int:
    """A seed for one (cycle, epoch): distinct for each, the same on every run."""
    value = seed
    for part in parts:
        value = (value * 1_000_003 + part + 1) % (2**63 - 1)
    return value
