"""Datasets for training: what a config's ``datasets`` callable returns, and built-in ones.

A ``datasets`` callable returns a :class:`Splits` (or a ``(train, validation)`` pair, or a dict
with those keys) of map-style datasets yielding ``(inputs, targets)``. The trainer batches them
itself: the order of each epoch follows from the seed, the cycle and the epoch alone, so a run
resumed in the middle of an epoch sees the very batches an uninterrupted one would.
"""

from __future__ import annotations

import importlib.util
import re
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


class JobResults(Splits):
    """The results of a ``tidal map`` job as training data: batch inference feeding a training.

    Each result row (``store.results``) is one item: its inputs are the numbers of the field
    ``inputs``, nested lists flattened (``PoseKeypoints``' ``landmarks``: 33 joints x [x, y, z,
    visibility] = 132 numbers); its target is the class that ``target_pattern``'s first group finds
    in the field ``target`` (default the item's path: ``"(cam\\\\d+)"`` → ``cam01``...), classes in
    sorted order. Rows whose field ``where`` is false are left out (``detected``: frames with a
    body). ``validation``: a regular expression on the path; the items it matches are held out —
    a recording the model never trained on, since frames of one video held out at random would
    leak; without it, ``val_fraction`` of the items, drawn with ``seed``.

    ``job``: the job's config file (its first stage) or its id; ``store``: the store's URL
    (default: the configured one)::

        datasets: {"tidal.train.datasets.JobResults": {job: "pose.hjson", inputs: "landmarks",
                   target_pattern: "(cam\\\\d+)", where: "detected", validation: "MultiPerson"}}
    """

    def __init__(self, job: str, inputs: str, target: str = "path", target_pattern: str = "(.*)",
                 where: str | None = None, validation: str | None = None, val_fraction: float = 0.2,
                 batch_size: int = 32, seed: int = 0, store: str | None = None) -> None:
        rows = _job_rows(job, store, where)
        features = torch.tensor([_numbers(row, inputs, job) for row in rows], dtype=torch.float32)
        labels = [_label(row, target, target_pattern, job) for row in rows]
        classes = sorted(set(labels))
        targets = torch.tensor([classes.index(label) for label in labels], dtype=torch.long)
        held = _held_out(rows, validation, val_fraction, seed)
        kept = ~held
        if not kept.any() or not held.any():
            raise ConfigError(f"JobResults: validation {validation!r} holds out {int(held.sum())} of {len(rows)} "
                              f"items of job {job}; choose a pattern that matches some paths but not all")
        super().__init__(TensorDataset(features[kept], targets[kept]), TensorDataset(features[held], targets[held]),
                         batch_size, classes)


def _job_rows(job: str, store_url: str | None, where: str | None) -> list[dict[str, Any]]:
    from tidal.tracking.stores import open_store

    store = open_store(store_url)
    try:
        job_id = _job_id(job)
        rows = [row for row in store.results(job_id) if where is None or row.get(where)]
    finally:
        store.close()
    if not rows:
        raise ConfigError(f"JobResults: job {job} has no results{f' where {where!r} is true' if where else ''} in "
                          f"this store; run `tidal map {job}` first (or check TIDAL_HOME / --store)")
    return rows


def _job_id(job: str) -> str:
    """The id of the job a config file defines (its first stage), or ``job`` itself."""
    if not Path(job).is_file():
        return job
    from tidal.config.job import load_config

    return load_config(Path(job))[0].job_id


def _numbers(row: dict[str, Any], field_name: str, job: str) -> list[float]:
    if field_name not in row:
        raise ConfigError(f"JobResults: the results of job {job} have no field {field_name!r}; they have "
                          f"{', '.join(sorted(row))}")
    flat = np.asarray(row[field_name], dtype=np.float32).ravel()
    if flat.size == 0:
        raise ConfigError(f"JobResults: item {row.get('key')} of job {job} has no {field_name!r} numbers; leave "
                          "such items out with `where` (e.g. where: \"detected\")")
    return [float(value) for value in flat]


def _label(row: dict[str, Any], field_name: str, pattern: str, job: str) -> str:
    found = re.search(pattern, str(row.get(field_name, "")))
    if found is None:
        raise ConfigError(f"JobResults: target_pattern {pattern!r} finds nothing in {field_name} "
                          f"{row.get(field_name)!r} (item {row.get('key')} of job {job}); give a regular "
                          "expression whose first group is the class")
    return found.group(1) if found.groups() else found.group(0)


def _held_out(rows: list[dict[str, Any]], validation: str | None, val_fraction: float, seed: int) -> torch.Tensor:
    if validation is not None:
        return torch.tensor([re.search(validation, str(row.get("path", ""))) is not None for row in rows])
    if not 0 < val_fraction < 1:
        raise ConfigError(f"val_fraction: expected a number between 0 and 1, got {val_fraction}")
    order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed))
    held = torch.zeros(len(rows), dtype=torch.bool)
    held[order[:max(1, round(len(rows) * val_fraction))]] = True
    return held
