"""Training from config files: ``tidal train``.

A config names the datasets, model, loss, metrics, optimizer (and scheduler) and the loop by
dotted names; a list of configs is a list of *cycles*, each inheriting the keys it does not set,
the weights carrying over. Everything is tracked as a run, with checkpoints as its artifacts.

    import tidal.train

    report = tidal.train.fit("examples/train-digits/digits.hjson")
    print(report.run_id, report.metrics["val/accuracy"])
    report = tidal.train.RayTrain(workers=2).fit("examples/train-digits/digits.hjson")  # Ray Train

Importing this package is light: torch is imported by the modules that need it, when a config
that names them is checked or run (so a misspelled name fails before torch loads).
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "Callback": "tidal.train.callbacks",
    "Checkpoint": "tidal.train.checkpoint",
    "Loop": "tidal.train.loop",
    "Metric": "tidal.train.metrics",
    "RayTrain": "tidal.train.ray",
    "Splits": "tidal.train.datasets",
    "TrainConfig": "tidal.train.config",
    "TrainReport": "tidal.train.trainer",
    "Trainer": "tidal.train.trainer",
    "World": "tidal.train.world",
    "fit": "tidal.train.trainer",
    "load_train_config": "tidal.train.config",
}

__all__ = ["Callback", "Checkpoint", "Loop", "Metric", "RayTrain", "Splits", "TrainConfig", "TrainReport", "Trainer",
           "World", "fit", "load_train_config"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tidal.train' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
