"""Where each step of a pipeline stands: its identity (hence its job), its current partitions, and
whether it is cached or stale — and why. Read by ``tidal run`` to decide what runs, and by
``tidal pipeline show|explain`` to say so; it reads the store and lists sources, and runs nothing.

Per-item caching is the ledger's: a step's job id is its identity, so an unchanged step's
ledger already holds every item it ever settled. A step is **cached** when every one of its
current partitions (named by content: a source's by its files, an earlier step's the same) is
closed in that ledger with no failure; otherwise the partitions not yet closed (new inputs) and
those with failures (retried) run, and the rest are skipped without being read. A million items
cost one query of the ledger's partitions, not one lookup per item.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tidal.config.spec import build
from tidal.jobs.ledger import PartitionState
from tidal.pipelines.config import PipelineConfig, Step
from tidal.pipelines.environment import READY_FILE, Environment
from tidal.pipelines.identity import changed_parts, code_identity, digest
from tidal.settings import home
from tidal.sources.base import Partition, Source
from tidal.status import PartitionStatus
from tidal.tracking.store import Store

REDUCE_PARTITION = "groups"  # a reduce step's one partition: its groups' rows


@dataclass
class StepState:
    """One step's identity, job, partitions and verdict."""

    step: Step
    identity: dict[str, Any]
    job_id: str
    partitions: list[Partition] = field(default_factory=list)
    closed: dict[str, PartitionState] = field(default_factory=dict)
    source: Source | None = None
    cached: bool = False
    reasons: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.step.name

    def pending(self) -> list[Partition]:
        """Partitions not closed cleanly: new inputs, or failures to retry."""
        return [partition for partition in self.partitions if not _clean(self.closed.get(partition.id))]


def step_states(pipeline: PipelineConfig, store: Store, forced: set[str] = frozenset(),  # type: ignore[assignment]
                built: dict[str, Environment] | None = None) -> dict[str, StepState]:
    """Every step's state, in run order. ``forced``: steps to run whatever their cache says;
    ``built``: the environments already built (else they are looked up, not built)."""
    states: dict[str, StepState] = {}
    for name, step in pipeline.steps.items():
        upstream = states.get(step.upstream) if step.upstream else None
        state = _state(step, upstream, pipeline, (built or {}).get(name))
        if step.kind != "source":
            judge(state, store, name in forced)
        if step.kind == "reduce" and upstream is not None and upstream.pending():
            state.cached = False  # statistics over an incomplete input are never reused
            state.reasons.append(incomplete(upstream))
        states[name] = state
    return states


def _state(step: Step, upstream: StepState | None, pipeline: PipelineConfig, environment: Environment | None
           ) -> StepState:
    identity: dict[str, Any] = {"kind": step.kind, "config": step.canonical}
    if step.kind != "source":
        identity["code"] = code_identity(step.target, pipeline.imports, pipeline.paths)
        identity["inputs"] = [upstream.job_id] if upstream else []
    if step.env is not None:
        identity["environment"] = _environment_digest(step, environment)
    if step.kind == "reduce" and upstream is not None:  # recomputed whole when its input changes
        identity["input_partitions"] = digest(sorted(p.id for p in upstream.partitions))
    state = StepState(step, identity, digest(identity))
    state.source, state.partitions = _partitions(step, upstream, pipeline)
    return state


def _environment_digest(step: Step, environment: Environment | None) -> str:
    """The resolved versions when built; the requirements' key when not built yet."""
    assert step.env is not None
    if environment is None:
        folder = home() / "envs" / step.env.key
        environment = Environment(folder) if (folder / READY_FILE).is_file() else None
    return environment.digest if environment is not None else f"unbuilt:{step.env.key}"


def _partitions(step: Step, upstream: StepState | None, pipeline: PipelineConfig
                ) -> tuple[Source | None, list[Partition]]:
    if step.kind == "reduce":
        return None, [Partition(REDUCE_PARTITION, None)]
    if step.source is not None or (upstream is not None and upstream.step.kind == "source"):
        spec = step.source or (upstream.step.source if upstream else None)
        assert spec is not None
        source = build(spec, pipeline.allowed)
        return source, source.partitions()
    assert upstream is not None
    return None, [Partition(p.id, p.size) for p in upstream.partitions]


def judge(state: StepState, store: Store, forced: bool = False) -> None:
    """Read the step's ledger and say whether it is cached, and why not."""
    ledger = store.ledger(state.job_id)
    try:
        state.closed = ledger.partition_states()
    finally:
        ledger.close()
    pending = state.pending()
    state.cached = not pending and not forced
    if forced:
        state.reasons = ["forced (--from or --no-cache)"]
    elif not state.closed:
        state.reasons = [_why_new(state, store)]
    elif pending:
        state.reasons = _why_pending(state, pending)


def _why_new(state: StepState, store: Store) -> str:
    """A step whose job has nothing yet: never ran, or what changed since its last job."""
    previous = _previous_identity(state, store)
    if previous is None:
        return "never ran"
    reasons = changed_parts(previous, state.identity)
    return "; ".join(reasons) if reasons else "its inputs changed"


def _previous_identity(state: StepState, store: Store) -> dict[str, Any] | None:
    name = job_name(state)
    for job in store.list_jobs(limit=500):
        if job["name"] == name and job["id"] != state.job_id:
            config = store.get_job(job["id"], max_failures=0).get("config") or {}
            return config.get("identity") if isinstance(config, dict) else None
    return None


def _why_pending(state: StepState, pending: list[Partition]) -> list[str]:
    new = [p for p in pending if p.id not in state.closed]
    failed = [p for p in pending if p.id in state.closed]
    reasons = []
    if new:
        reasons.append(f"{len(new)} of {len(state.partitions)} partitions are new (new or changed inputs)")
    if failed:
        reasons.append(f"{len(failed)} partitions had failures (retried)")
    return reasons


def incomplete(upstream: StepState) -> str:
    """Why a step over ``upstream`` cannot be complete (yet)."""
    pending = upstream.pending()
    failed = sum(1 for partition in pending if partition.id in upstream.closed)
    if not failed:
        return f"step {upstream.name!r} runs first"
    return f"step {upstream.name!r} has {failed} partitions with failures"


def job_name(state: StepState) -> str:
    """The step's job's name in ``tidal jobs ls``."""
    return f"pipeline step {state.name}"


def _clean(closed: PartitionState | None) -> bool:
    return closed is not None and closed.status is PartitionStatus.DONE and closed.failed == 0


def pipeline_step_job(store: Store, path: Path, step: str | None) -> str:
    """The job id of ``step`` of the pipeline in ``path`` (``tidal results export FILE --step S``)."""
    from tidal.errors import UsageError
    from tidal.pipelines.config import load_pipeline

    if not path.is_file():
        raise UsageError(f"--step names a step of a pipeline file, but {path} is not a file")
    pipeline = load_pipeline(path)
    runnable = [name for name, found in pipeline.steps.items() if found.kind != "source"]
    if step is None:
        raise UsageError(f"{path} is a pipeline; name one of its steps with --step ({', '.join(runnable)})")
    if pipeline.step(step).kind == "source":
        raise UsageError(f"step {step!r} is a source and keeps no results; pick one of {', '.join(runnable)}")
    return step_states(pipeline, store)[step].job_id
