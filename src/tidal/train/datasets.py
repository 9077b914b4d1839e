"""Datasets for training: what a config's ``datasets`` callable returns, and built-in ones.

A ``datasets`` callable returns a :class:`Splits` (or a ``(train, validation)`` pair, or a dict
with those keys) of map-style datasets yielding ``(inputs, targets)``. The trainer batches them
itself: the order of each epoch follows from the seed, the cycle and the epoch alone, so a run
resumed in the middle of an epoch sees the very batches an uninterrupted one would.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sized
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset

from tidal.errors import ConfigError


@dataclass
class Splits:
    """The training and validation data of a training, and how to batch them."""

    train: Dataset[Any]
    validation: Dataset[Any] | None = None
    batch_size: int = 32
    class_names: list[str] = field(default_factory=list)  # for the confusion matrix's labels

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"batch_size: expected a positive number, got {self.batch_size}")
        for name, data in (("train", self.train), ("validation", self.validation)):
            if data is not None and not isinstance(data, Sized):
                raise ConfigError(f"the {name} dataset has no len(); give a map-style dataset "
                                  "(torch.utils.data.Dataset with __len__ and __getitem__)")


def as_splits(value: Any, where: str) -> Splits:
    """What a datasets callable returned, as Splits (pairs and dicts are accepted too)."""
    if isinstance(value, Splits):
        return value
    if isinstance(value, dict) and "train" in value:
        return Splits(value["train"], value.get("validation"), int(value.get("batch_size", 32)))
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return Splits(value[0], value[1])
    raise ConfigError(f"{where}: expected the datasets callable to return tidal.train.Splits(train, validation,"
                      f" batch_size=...) or a (train, validation) pair, got {type(value).__name__}")


class Digits(Splits):
    """scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes; no download):
    inputs ``(1, 8, 8)`` floats in 0..1, targets the digit. ``val_fraction`` of the images,
    drawn with ``seed``, are held out for validation."""

    def __init__(self, batch_size: int = 64, val_fraction: float = 0.2, seed: int = 0) -> None:
        if not 0 < val_fraction < 1:
            raise ConfigError(f"val_fraction: expected a number between 0 and 1, got {val_fraction}")
        pixels, labels = _digits()
        inputs = torch.tensor(pixels / 16.0, dtype=torch.float32).reshape(-1, 1, 8, 8)
        targets = torch.tensor(labels, dtype=torch.long)
        order = torch.randperm(len(targets), generator=torch.Generator().manual_seed(seed))
        held_out = round(len(targets) * val_fraction)
        validation, train = order[:held_out], order[held_out:]
        super().__init__(TensorDataset(inputs[train], targets[train]),
                         TensorDataset(inputs[validation], targets[validation]),
                         batch_size, [str(digit) for digit in range(10)])


def _digits() -> tuple[np.ndarray, np.ndarray]:
    """The digits file inside scikit-learn, read directly: importing scikit-learn takes seconds."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("tidal.train.datasets.Digits reads the digits that ship with scikit-learn: "
                          "pip install 'tidal[train]'")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "digits.csv.gz"
    if not path.is_file():
        from sklearn.datasets import load_digits  # a layout we do not know: the slow, sure way

        digits = load_digits()
        return digits.data, digits.target
    table = np.loadtxt(path, delimiter=",")
    return table[:, :-1], table[:, -1].astype(np.int64)
