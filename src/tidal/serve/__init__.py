"""``tidal serve``: any processor behind HTTP, with batching, scaled to zero when idle.

A light front process owns the port (:mod:`tidal.serve.app`, reading requests with
:mod:`tidal.serve.payload`) and hands each request to a serving backend
(:mod:`tidal.serve.backend`). The local backend (:mod:`tidal.serve.local`) runs model workers
(:mod:`tidal.serve.worker`) as processes started on the first request and stopped after an
idle timeout (:mod:`tidal.serve.scaling`), talking to them in typed messages
(:mod:`tidal.serve.protocol`); a worker turns requests into items (:mod:`tidal.serve.inputs`)
and processes the items of requests that arrive together in one batch
(:mod:`tidal.serve.batching`). Processor hooks: :mod:`tidal.serve.hooks`. Settings:
:mod:`tidal.serve.config`. Metrics: :mod:`tidal.serve.metrics`. The tracked run:
:mod:`tidal.serve.tracker`.

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
    "ProcessorInfo": "tidal.serve.hooks",
    "RequestError": "tidal.errors",
    "describe_processor": "tidal.serve.local",
    "Backend": "tidal.serve.backend",
    "LocalBackend": "tidal.serve.local",
    "RayServeBackend": "tidal.serve.ray",
    "Payload": "tidal.serve.payload",
    "Reply": "tidal.serve.backend",
    "create_app": "tidal.serve.app",
    "serve": "tidal.serve.app",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tidal.serve' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
