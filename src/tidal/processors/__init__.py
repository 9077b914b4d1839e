"""Processors: user code and built-ins. Built-ins load lazily (they import NumPy and models)."""

from __future__ import annotations

import importlib
from typing import Any

from tidal.processors.base import FunctionProcessor, Processor, Resources

_LAZY = {
    "DominantColors": "tidal.processors.dominant_colors",
    "NoOp": "tidal.processors.noop",
    "PoseKeypoints": "tidal.processors.pose",
    "RepetitionCounter": "tidal.processors.repetitions",
}

__all__ = ["FunctionProcessor", "Processor", "Resources", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tidal.processors' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
