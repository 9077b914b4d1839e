"""Config files: loading, object specs, validation, stages.

Names load lazily: ``tidal.config.spec`` is imported by the processor host, which the job
config imports in turn.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "JobConfig": "tidal.config.job",
    "build_processor": "tidal.config.job",
    "load_config": "tidal.config.job",
    "parse_job": "tidal.config.job",
    "ObjectSpec": "tidal.config.spec",
    "build": "tidal.config.spec",
    "parse_spec": "tidal.config.spec",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tidal.config' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
