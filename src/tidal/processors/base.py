"""The Processor plug-in point: user code that turns a batch of items into one result each."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tidal.settings import DEFAULT_BATCH_SIZE
from tidal.sources.base import Item


@dataclass(frozen=True, slots=True)
class Resources:
    """What one worker running the processor needs: CPUs, GPUs, memory in bytes."""

    cpus: float = 1.0
    gpus: float = 0.0
    memory: int | None = None


class Processor:
    """Base class of processors.

    ``setup()`` runs once per worker (load the model there), ``process(batch)`` returns one
    result per item, in order, ``teardown()`` runs when the worker stops. Engines and services
    run processors through :class:`tidal.processors.host.ProcessorHost`.

    Example::

        class Brightness(Processor):
            batch_size = 32

            def process(self, batch):
                return [{"mean": float(item.data.mean())} for item in batch]
    """

    batch_size: int = DEFAULT_BATCH_SIZE
    resources: Resources = Resources()
    #: Raise it when ``process()`` returns other values for the same input and arguments (a new
    #: algorithm): the job id changes with it, so a job started before re-computes its items
    #: instead of resuming with results of two algorithms mixed. 1 leaves the job id as it was.
    results_version: int = 1

    def setup(self) -> None:
        """Load models and other per-worker state. Runs once per worker, before any batch."""

    def process(self, batch: list[Item]) -> list[Any]:
        """Return one result per item of ``batch``, in order: a dict (or a dataclass or pydantic
        model) of JSON values, NumPy arrays and scalars, dates; see
        :func:`tidal.processors.host.encode_json`. Raising fails the batch's items, which the
        host then retries in halves so only the bad items fail."""
        raise NotImplementedError

    def teardown(self) -> None:
        """Release what ``setup`` acquired. Runs once when the worker stops."""


class FunctionProcessor(Processor):
    """A plain function ``fn(data, **kwargs) -> result`` used as a processor, item by item."""

    def __init__(self, fn: Callable[..., Any], kwargs: dict[str, Any] | None = None) -> None:
        self.fn = fn
        self.kwargs = dict(kwargs or {})

    def process(self, batch: list[Item]) -> list[Any]:
        return [self.fn(item.data, **self.kwargs) for item in batch]


def is_processor_class(target: Any) -> bool:
    """True when ``target`` is a Processor subclass (instantiated with kwargs)."""
    return inspect.isclass(target) and issubclass(target, Processor)
