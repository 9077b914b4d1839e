"""Running a pipeline: each step in order, reusing what is cached, running only what is stale.

A map step **is** a ``tidal map`` job (:func:`tidal.jobs.runner.run_job`: resumable,
exactly-once, one ledger per job) whose id is the step's identity (see
:mod:`tidal.pipelines.state`); a step reading an earlier one reads its rows through the store
(:class:`~tidal.sources.results.StepResults`). A reduce step groups the earlier step's current
rows in this process and writes one row per group. A step in its own environment runs on an
:class:`~tidal.pipelines.envhost.EnvironmentEngine`.

Example::

    pipeline = load_pipeline("pipeline.hjson")
    report = run_pipeline(pipeline, engine=InlineEngine())
    [(step.name, step.outcome) for step in report.steps]      # [("pose", "ran"), ("video", "cached")]
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tidal.config.job import JobConfig
from tidal.config.spec import build
from tidal.engines.base import BatchMessage, Engine, Row
from tidal.errors import PipelineError
from tidal.jobs.progress import ProgressReporter
from tidal.jobs.runner import run_job
from tidal.pipelines.config import PipelineConfig, Step
from tidal.pipelines.environment import Environment
from tidal.pipelines.identity import code_identity
from tidal.pipelines.record import PIPELINES_PROJECT, PipelineRecord
from tidal.pipelines.state import REDUCE_PARTITION, StepState, incomplete, job_name, judge, step_states
from tidal.processors.host import describe_error, encode_json
from tidal.settings import home
from tidal.sources.base import Partition, Source
from tidal.sources.results import StepResults, partition_rows, store_address
from tidal.status import ItemStatus, JobStatus, PartitionStatus
from tidal.tracking.store import Store
from tidal.tracking.stores import open_store


@dataclass
class StepReport:
    """What happened to one step: ``outcome`` is cached, ran or failed."""

    name: str
    job_id: str
    outcome: str
    reasons: list[str]
    done: int = 0
    failed: int = 0
    processed: int = 0
    seconds: float = 0.0


@dataclass
class PipelineReport:
    steps: list[StepReport] = field(default_factory=list)
    run_id: str | None = None  # the pipeline's run (the dashboard's /pipelines/RUN_ID)

    @property
    def exit_code(self) -> int:
        """0 when every step is clean, 3 when items or partitions failed (as ``tidal map``)."""
        return 3 if any(step.failed for step in self.steps) else 0


def run_pipeline(pipeline: PipelineConfig, *, store: Store | None = None, state_home: Path | None = None,
                 engine: Engine | None = None, start: str | None = None, no_cache: bool = False,
                 progress: Callable[[], ProgressReporter] = ProgressReporter) -> PipelineReport:
    """Run what is stale in ``pipeline``; ``start`` forces a step and every step after it,
    ``no_cache`` every step. ``engine`` overrides the config's (environments keep theirs)."""
    folder = state_home or home()
    owned = store is None
    store = store or open_store(home=folder)
    try:
        return _Run(pipeline, store, folder, engine, _forced(pipeline, start, no_cache), progress).all()
    finally:
        if owned:
            store.close()


def _forced(pipeline: PipelineConfig, start: str | None, no_cache: bool) -> set[str]:
    if no_cache:
        return set(pipeline.steps)
    return set(pipeline.after(start)) if start else set()


class _Run:
    def __init__(self, pipeline: PipelineConfig, store: Store, folder: Path, engine: Engine | None,
                 forced: set[str], progress: Callable[[], ProgressReporter]) -> None:
        self.pipeline, self.store, self.folder = pipeline, store, folder
        self.engine, self.forced, self.progress = engine, forced, progress
        # every environment is built before any step runs: a failed install stops the pipeline first
        self.environments = {name: Environment.ensure(step.env, folder)
                             for name, step in pipeline.steps.items() if step.env is not None}

    def all(self) -> PipelineReport:
        states = step_states(self.pipeline, self.store, self.forced, self.environments)
        record = PipelineRecord.start(self.pipeline, self.store, states, self.forced)
        report = PipelineReport(run_id=record.run_id)
        try:
            for state in states.values():
                if state.step.kind == "source":
                    continue
                if not state.cached:
                    record.step_started(state.name)
                report.steps.append(self._step(state, states.get(state.step.upstream or "")))
                record.step_finished(report.steps[-1])
        except BaseException as error:
            record.finish(None, error)
            raise
        record.finish(report)
        return report

    def _step(self, state: StepState, upstream: StepState | None) -> StepReport:
        if state.cached:
            return StepReport(state.name, state.job_id, "cached", [])
        if upstream is not None and upstream.step.kind != "source":
            judge(upstream, self.store)  # its partitions as they are now, after it ran
        started = time.monotonic()
        if state.step.kind == "reduce":
            assert upstream is not None
            done, failed = self._reduce(state, upstream)
            step_report = StepReport(state.name, state.job_id, "ran", state.reasons, done, failed, done + failed)
            if upstream.pending():  # reduced what there is, but it is not complete: never a clean step
                step_report.failed += len(upstream.pending())
                step_report.reasons = [*state.reasons, incomplete(upstream)]
        else:
            job = run_job(StepJob.of(state, upstream, self), store=self.store, state_home=self.folder,
                          engine=self._engine(state), retry_failed=True, progress=self.progress(),
                          config_file=str(self.pipeline.path.resolve()), project=PIPELINES_PROJECT,
                          recompute=state.name in self.forced)
            judge(state, self.store)  # failures of partitions no longer current (replaced files) do not count
            step_report = StepReport(state.name, state.job_id, "ran", state.reasons, job.done,
                                     current_failures(state), job.processed)
        self._check_code_unchanged(state)
        step_report.seconds = time.monotonic() - started
        if step_report.failed:
            step_report.outcome = "failed"
        return step_report

    def _engine(self, state: StepState) -> Engine:
        step = state.step
        busy = len(state.partitions) if state.name in self.forced else len(state.pending())
        if step.env is not None:
            from tidal.pipelines.envhost import EnvironmentEngine

            workers = getattr(self.engine, "workers", None) or _configured_workers(self.pipeline)
            return EnvironmentEngine(self.environments[step.name], min(workers, max(1, busy)))
        return fewer_workers(self.engine or build(self.pipeline.engine, self.pipeline.allowed), busy)

    def _check_code_unchanged(self, state: StepState) -> None:
        now = code_identity(state.step.target, self.pipeline.imports, self.pipeline.paths)
        if now != state.identity.get("code"):
            raise PipelineError(f"{self.pipeline.path}: step {state.name!r}: its code changed while it ran "
                                f"({state.step.target}); its results may mix old and new code, so later steps "
                                "did not run. Run again: the step reruns under its new identity")

    def _reduce(self, state: StepState, upstream: StepState) -> tuple[int, int]:
        """Group the earlier step's current rows and write one row per group, in one transaction."""
        step = state.step
        assert step.reducer is not None and step.group_by is not None
        reducer = build(step.reducer, self.pipeline.allowed)
        groups: dict[str, list[dict[str, Any]]] = {}
        for partition in upstream.partitions:
            for row in partition_rows(self.store, upstream.job_id, partition.id):
                groups.setdefault(json.dumps(row.get(step.group_by), default=str), []).append(row)
        rows = [_group_row(state.job_id, step.group_by, json.loads(group), reducer, members)
                for group, members in sorted(groups.items())]
        failed = sum(1 for row in rows if row.error is not None)
        ledger = self.store.ledger(state.job_id)
        try:
            ledger.register(job_name(state), {"identity": state.identity}, str(self.pipeline.path.resolve()))
            ledger.set_status(JobStatus.RUNNING, len(rows))
            ledger.record(BatchMessage(REDUCE_PARTITION, rows, (PartitionStatus.DONE.value, None), failed))
            ledger.flush()
            ledger.set_status(JobStatus.FAILED if failed else JobStatus.COMPLETED)
        finally:
            ledger.close()
        return len(rows) - failed, failed


def _group_row(job_id: str, group_by: str, group: Any, reducer: Any, members: list[dict[str, Any]]) -> Row:
    meta = {group_by: group}
    path = group if group_by == "path" and isinstance(group, str) else None
    key = str(group)
    try:
        result = encode_json(reducer.reduce(members))
    except Exception as error:  # one group's failure is that group's, as an item's is
        return Row(job_id, REDUCE_PARTITION, key, ItemStatus.FAILED.value, path, None, encode_json(meta), None,
                   describe_error(error, with_origin=True))
    return Row(job_id, REDUCE_PARTITION, key, ItemStatus.DONE.value, path, None, encode_json(meta), result, None)


def current_failures(state: StepState) -> int:
    """Failed items, and failed partitions, among the step's current partitions."""
    closed = [state.closed.get(partition.id) for partition in state.partitions]
    return sum(found.failed + (found.status is not PartitionStatus.DONE) for found in closed if found is not None)


def fewer_workers(engine: Engine, partitions: int) -> Engine:
    """``engine`` with no more worker processes than partitions to run.

    A local worker starts and sets its processor up (a pose model: a second or more, and its
    memory) before it asks for work, so a worker with no partition to take costs that for
    nothing: on a rerun after one input changed, most of the step's time on a machine with many
    cores. Other engines are returned as they are.
    """
    from tidal.engines.local import LocalEngine

    if isinstance(engine, LocalEngine) and engine.workers > partitions:
        return LocalEngine(max(1, partitions), engine.start_method, engine.inflight)
    return engine


def _configured_workers(pipeline: PipelineConfig) -> int:
    workers = pipeline.engine.kwargs.get("workers")
    return int(workers) if isinstance(workers, int) else 1


class StepJob(JobConfig):
    """A map step as a ``tidal map`` job: its id is the step's identity, its source built already."""

    _source: Source
    _partitions: list[Partition]
    _job_id: str

    @classmethod
    def of(cls, state: StepState, upstream: StepState | None, run: _Run) -> StepJob:
        step = state.step
        assert step.processor is not None
        pipeline = run.pipeline
        job = cls(step.source or _placeholder(step), step.processor.object_spec, pipeline.engine, pipeline.imports,
                  job_name(state), str(pipeline.path), {"identity": state.identity}, pipeline.paths)
        job._job_id = state.job_id
        job._source = state.source if state.source is not None else _step_results(state, upstream, run.store)
        job._partitions = state.partitions if state.source is not None else job._source.partitions()
        return job

    @property
    def job_id(self) -> str:  # type: ignore[override]
        return self._job_id

    def build_source(self) -> Source:
        return _Listed(self._source, self._partitions)


def _placeholder(step: Step) -> Any:
    from tidal.config.spec import ObjectSpec

    return ObjectSpec("tidal.sources.results.StepResults", {}, f"{step.where_in_file}.from")


def _step_results(state: StepState, upstream: StepState | None, store: Store) -> StepResults:
    """The earlier step's current partitions, each with what went wrong in it (if anything)."""
    assert upstream is not None
    listed = []
    for partition in upstream.partitions:
        closed = upstream.closed.get(partition.id)
        problem = ""
        if closed is None:
            problem = f"step {upstream.name!r} did not finish its partition {partition.id}"
        elif closed.status is not PartitionStatus.DONE or closed.failed:
            problem = (f"step {upstream.name!r} failed on {closed.failed or 'the rest of'} items of partition "
                       f"{partition.id}; they are retried on the next run")
        listed.append((partition.id, partition.size, problem))
    return StepResults(store_address(store), upstream.job_id, listed, state.step.where)


class _Listed(Source):
    """A source whose partitions were listed once already (a video's digest is not read twice)."""

    def __init__(self, source: Source, partitions: list[Partition]) -> None:
        self.source = source
        self.listed = partitions

    def partitions(self) -> list[Partition]:
        return self.listed

    def read(self, partition: Partition) -> Any:
        return self.source.read(partition)
