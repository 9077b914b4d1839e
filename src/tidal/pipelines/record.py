"""A pipeline's execution as a run in the store: how the dashboard knows pipelines.

``tidal run pipeline.hjson`` records one run (project ``pipelines``, kind ``pipeline``, tag
``pipeline=NAME``). Its config holds the graph — each step's name, kind, the step it reads, what
it runs and its job — and its live statistics hold each step's verdict as that execution saw it:
cached or to run and why, how many of its partitions (and items, where their count is exact)
came from the cache, then what ran. The steps' jobs keep their own progress and failures.

Why a run, not a mark on the steps' jobs: a step's job is its identity, so it is shared by every
pipeline and every execution with the same step, while stale reasons belong to one execution.
A run is already the store's record of anything executed — running, completed, failed, or lost
when its process dies — and it reaches the dashboard through every store (SQLite, PostgreSQL, a
``tidal server`` over HTTP) with no new table.

Example::

    record = PipelineRecord.start(pipeline, store, states, forced=set())
    record.step_started("pose")
    record.step_finished(step_report)
    record.finish(report)
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from tidal.pipelines.state import StepState
from tidal.status import RunStatus
from tidal.tracking.run import Run
from tidal.tracking.store import Store

if TYPE_CHECKING:
    from tidal.pipelines.config import PipelineConfig
    from tidal.pipelines.runner import PipelineReport, StepReport

PIPELINES_PROJECT = "pipelines"
PIPELINE_KIND = "pipeline"
PIPELINE_TAG = "pipeline"  # its value is the pipeline's name


def pipeline_graph(pipeline: PipelineConfig, states: dict[str, StepState]) -> dict[str, Any]:
    """The run's config: the pipeline's file and name, and its steps in run order."""
    steps = [_graph_step(state) for state in states.values()]
    return {"pipeline": {"name": pipeline.name, "file": str(pipeline.path.resolve()), "steps": steps}}


def _graph_step(state: StepState) -> dict[str, Any]:
    step = state.step
    node: dict[str, Any] = {"name": step.name, "kind": step.kind, "from": step.upstream, "target": step.target,
                            "job_id": None if step.kind == "source" else state.job_id}
    if step.where:
        node["where"] = list(step.where)
    if step.group_by:
        node["group_by"] = step.group_by
    if step.env is not None:
        node["env"] = step.env.describe()
    return node


def step_verdict(state: StepState, forced: bool) -> dict[str, Any]:
    """What a step looks like before it runs: cached or to run, why, and what the cache holds.

    ``hit_items`` counts the items of the reused partitions only where partitions know their
    count exactly (not through a ``where`` filter, which keeps fewer rows than it reads).
    """
    sizes = [partition.size for partition in state.partitions]
    pending = {partition.id for partition in state.pending()}
    reused = [] if forced else [p for p in state.partitions if p.id not in pending]
    exact = not state.step.where and all(size is not None for size in sizes)
    verdict: dict[str, Any] = {
        "status": "cached" if state.cached else "waiting", "reasons": list(state.reasons),
        "partitions": len(state.partitions), "hit_partitions": len(reused),
        "items": sum(size or 0 for size in sizes) if exact else None,
        "hit_items": sum(p.size or 0 for p in reused) if exact else None,
    }
    if state.step.kind == "source":
        verdict["status"] = "listed"
        verdict["hit_partitions"] = verdict["hit_items"] = None
    return verdict


class PipelineRecord:
    """The run of one pipeline execution; each step's verdict is updated as the steps go."""

    def __init__(self, run: Run, steps: dict[str, dict[str, Any]]) -> None:
        self.run = run
        self.steps = steps

    @classmethod
    def start(cls, pipeline: PipelineConfig, store: Store, states: dict[str, StepState],
              forced: set[str]) -> PipelineRecord:
        """Create the run (no console or system capture: the steps' jobs are runs of their own)."""
        run = Run(store, project=PIPELINES_PROJECT, name=pipeline.name, kind=PIPELINE_KIND,
                  config=pipeline_graph(pipeline, states), tags={PIPELINE_TAG: pipeline.name}, capture=False)
        record = cls(run, {name: step_verdict(state, name in forced) for name, state in states.items()})
        run.set_stats(record.stats())
        return record

    @property
    def run_id(self) -> str:
        return self.run.id

    def stats(self) -> dict[str, Any]:
        return {"steps": self.steps, "updated_at": time.time()}

    def step_started(self, name: str) -> None:
        self.steps[name]["status"] = "running"
        self.steps[name]["started_at"] = time.time()
        self.run.set_stats(self.stats())

    def step_finished(self, report: StepReport) -> None:
        """A step's outcome (cached, ran or failed) and, when it ran, what it processed."""
        step = self.steps[report.name]
        step["status"] = report.outcome
        if report.outcome != "cached":
            step.update(reasons=list(report.reasons), processed=report.processed, done=report.done,
                        failed=report.failed, seconds=round(report.seconds, 3))
        self.run.set_stats(self.stats())

    def finish(self, report: PipelineReport | None, error: BaseException | None = None) -> None:
        """End the run: failed when a step failed or an error stopped the pipeline (steps not
        reached stay "waiting"), interrupted on Ctrl-C."""
        if report is not None:
            failed = [step.name for step in report.steps if step.outcome == "failed"]
            status = RunStatus.FAILED if failed else RunStatus.COMPLETED
            message = f"failed steps: {', '.join(failed)}" if failed else None
        else:
            status = RunStatus.INTERRUPTED if isinstance(error, KeyboardInterrupt) else RunStatus.FAILED
            message = f"{type(error).__name__}: {error}"
            for step in self.steps.values():
                if step["status"] == "running":
                    step["status"] = "interrupted" if status is RunStatus.INTERRUPTED else "failed"
        # as live statistics, not finish(stats=...): the writer sends pending live statistics after
        # the final update of the same flush, so an earlier set_stats would win over finish's
        self.run.set_stats(self.stats())
        self.run.finish(status, error=message)
