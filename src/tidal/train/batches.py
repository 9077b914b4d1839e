"""Batches of an epoch, in an order that depends only on a seed: what makes resume exact.

A DataLoader with ``shuffle=True`` draws its order from the global random state, so a run resumed
mid-epoch cannot see the batches it would have seen. Here the epoch's permutation comes from its
own generator seeded per (training seed, cycle, epoch), and a resumed epoch skips the batches
already done without loading them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sized
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset


def epoch_batches(dataset: Dataset[Any], batch_size: int, seed: int | None, skip: int = 0) -> Iterator[Any]:
    """The epoch's batches, shuffled by ``seed`` (None: in order), the first ``skip`` left out."""
    return iter(_loader(dataset, batch_indices(dataset, batch_size, seed, skip)))


def shared_batches(dataset: Dataset[Any], batch_size: int, seed: int | None, skip: int,
                   shard: Callable[[list[int]], list[int]]) -> Iterator[tuple[Any, int]]:
    """This worker's ``shard`` of each of the epoch's batches, with the whole batch's item count
    (what the step is counted as, on every worker)."""
    batches = batch_indices(dataset, batch_size, seed, skip)
    loader = _loader(dataset, [shard(batch) for batch in batches])
    return zip(loader, (len(batch) for batch in batches), strict=True)


def batch_indices(dataset: Dataset[Any], batch_size: int, seed: int | None, skip: int = 0) -> list[list[int]]:
    """The item indices of each of the epoch's batches after the first ``skip``."""
    assert isinstance(dataset, Sized)
    size = len(dataset)
    order = torch.randperm(size, generator=torch.Generator().manual_seed(seed)) if seed is not None \
        else torch.arange(size)
    indices = order.tolist()
    return [indices[start:start + batch_size] for start in range(skip * batch_size, size, batch_size)]


def _loader(dataset: Dataset[Any], batches: list[list[int]]) -> DataLoader[Any]:
    # its own generator: a DataLoader's iterator otherwise draws a seed from torch's global random
    # state, and one made after a mid-epoch resume restored that state would shift the dropout masks
    return DataLoader(dataset, batch_sampler=batches, num_workers=0, generator=torch.Generator())


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
