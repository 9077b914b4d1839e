"""``tidal serve``: any processor behind HTTP, with batching, scaled to zero when idle.

A light front process (:mod:`tidal.serve.front`) owns the port; model workers
(:mod:`tidal.serve.worker`) are processes started on the first request and stopped after an
idle timeout; items of requests that arrive together are processed in one batch
(:mod:`tidal.serve.batching`). Settings: :mod:`tidal.serve.config`. Metrics:
:mod:`tidal.serve.metrics`.

Example::

    from tidal.serve import load_service, serve

    serve(load_service("examples/repetitions/service.hjson"), port=8080)

Names load lazily: importing ``tidal.serve`` (as a worker does) does not import FastAPI.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "HTTPSettings": "tidal.serve.config",
    "MediaSettings": "tidal.serve.config",
    "ServiceConfig": "tidal.serve.config",
    "load_service": "tidal.serve.config",
    "service_from_target": "tidal.serve.config",
    "ProcessorInfo": "tidal.serve.worker",
    "RequestError": "tidal.serve.worker",
    "describe_processor": "tidal.serve.worker",
    "create_app": "tidal.serve.front",
    "serve": "tidal.serve.front",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tidal.serve' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
