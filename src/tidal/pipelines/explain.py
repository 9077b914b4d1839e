"""``tidal pipeline explain STEP [ITEM]``: why a step, or one of its items, is a hit or a miss.

A step is explained by its identity (each part and its digest) and its verdict; an item by where
its key is in the step's ledger: done in a current partition (a hit), failed (retried), in a
partition whose input is no longer current (stale), or absent (a miss: it runs next time).
"""

from __future__ import annotations

from typing import Any

from tidal.pipelines.config import PipelineConfig
from tidal.pipelines.identity import digest
from tidal.pipelines.state import StepState, step_states
from tidal.status import ItemStatus
from tidal.tracking.store import Store

MAX_MATCHES = 5


def explain_step(pipeline: PipelineConfig, store: Store, name: str) -> list[str]:
    """The step's identity, part by part, and its verdict."""
    state = _state(pipeline, store, name)
    verdict = "cached: every current partition is done" if state.cached else f"stale: {'; '.join(state.reasons)}"
    lines = [f"step {name}: job {state.job_id} ({state.step.kind}) — {verdict}"]
    lines += [f"  {part}: {_summary(value)}" for part, value in state.identity.items()]
    lines.append(f"  partitions: {len(state.partitions)} current, "
                 f"{sum(1 for p in state.partitions if p.id in state.closed)} settled in the ledger")
    return lines


def explain_item(pipeline: PipelineConfig, store: Store, name: str, item: str) -> list[str]:
    """Where item keys starting with ``item`` stand in the step's ledger."""
    state = _state(pipeline, store, name)
    current = {partition.id for partition in state.partitions}
    ledger = store.ledger(state.job_id)
    found: list[str] = []
    try:
        for partition_id in [*current, *(pid for pid in state.closed if pid not in current)]:
            for status in (ItemStatus.DONE, ItemStatus.FAILED):
                for key in sorted(ledger.keys(partition_id, [status])):
                    if key.startswith(item) and len(found) < MAX_MATCHES:
                        found.append(_verdict(key, status, partition_id in current, state))
    finally:
        ledger.close()
    if not found:
        return [f"{name}: no item of job {state.job_id} has a key starting with {item!r}: a miss — it is "
                f"processed by the next run ({'; '.join(state.reasons) or 'its input is not current'})"]
    return found


def _verdict(key: str, status: ItemStatus, current: bool, state: StepState) -> str:
    if not current:
        return f"{key}: stale — its partition's input is no longer current (the file changed or went away)"
    if status is ItemStatus.FAILED:
        return f"{key}: a miss — it failed and is retried by the next run (`tidal jobs show {state.job_id}`)"
    return f"{key}: a hit — done in job {state.job_id}, whose identity (config, code, inputs) is unchanged"


def _state(pipeline: PipelineConfig, store: Store, name: str) -> StepState:
    pipeline.step(name)
    state = step_states(pipeline, store)[name]
    return state


def _summary(value: Any) -> str:
    if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
        return ", ".join(f"{key} {item}" for key, item in value.items())
    return f"{digest(value)} {str(value)[:100]}"
