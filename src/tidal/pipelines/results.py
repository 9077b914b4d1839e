"""A pipeline step's current results: the rows of its current partitions only.

A step's job keeps every item it ever settled, so that a file put back is a cache hit again;
when an input file is replaced, the rows of its old content stay in the ledger, under keys
that name that content. Exports and summaries of a step (``tidal results export FILE --step S``)
read through :class:`CurrentResults`, which returns only the rows of the step's current
partitions, as the steps after it do.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tidal.pipelines.config import is_pipeline_file, load_pipeline
from tidal.pipelines.state import StepState, step_states
from tidal.sources.results import partition_rows
from tidal.status import ItemStatus
from tidal.tracking.store import Store


class CurrentResults(Store):
    """``store`` with ``results(job_id)`` of a pipeline's step jobs limited to current rows;
    everything else is the store's."""

    def __init__(self, store: Store, states: dict[str, StepState]) -> None:
        self.store = store
        self.steps = {state.job_id: state for state in states.values() if state.step.kind != "source"}

    def __getattribute__(self, name: str) -> Any:
        if name in ("store", "steps", "results", "_current"):
            return object.__getattribute__(self, name)
        return getattr(object.__getattribute__(self, "store"), name)

    def results(self, job_id: str, include_failed: bool = False) -> Iterator[dict[str, Any]]:
        state = self.steps.get(job_id)
        if state is None:
            return self.store.results(job_id, include_failed)
        return self._current(state, include_failed)

    def _current(self, state: StepState, include_failed: bool) -> Iterator[dict[str, Any]]:
        for partition in state.partitions:
            yield from partition_rows(self.store, state.job_id, partition.id)
            if include_failed:
                yield from self._failed(state, partition.id)

    def _failed(self, state: StepState, partition_id: str) -> Iterator[dict[str, Any]]:
        ledger = self.store.ledger(state.job_id)
        try:
            keys = sorted(ledger.keys(partition_id, [ItemStatus.FAILED]))
        finally:
            ledger.close()
        yield from ({"key": key, "status": ItemStatus.FAILED.value} for key in keys)


def current_results(store: Store, reference: str) -> Store:
    """``store`` itself, or a :class:`CurrentResults` over it when ``reference`` is a pipeline file."""
    path = Path(reference)
    if not (path.is_file() and is_pipeline_file(path)):
        return store
    return CurrentResults(store, step_states(load_pipeline(path), store))
