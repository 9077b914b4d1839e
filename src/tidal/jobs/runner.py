"""The run loop of ``tidal map``: lock, plan, run on an engine, record every batch, report.

The job, its ledger and its run record all go to one store: the embedded SQLite file by default,
or whatever ``TIDAL_TRACKING_URI`` names (PostgreSQL, a tidal server), so a job run on one
machine is listed, followed and exported from another. The run is recorded through the same
Run API as scripts (project ``jobs`` unless told otherwise), its progress as live statistics.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tidal.config.job import JobConfig
from tidal.engines.base import BatchMessage, Engine, Work
from tidal.jobs.ledger import JobStatus, Ledger
from tidal.jobs.lock import JobLock
from tidal.jobs.plan import Plan
from tidal.jobs.progress import ProgressReporter, Snapshot
from tidal.settings import home
from tidal.status import RunStatus
from tidal.tracking.run import Run
from tidal.tracking.store import Store
from tidal.tracking.stores import open_store

JOBS_PROJECT = "jobs"  # the project of a job's runs unless the caller names one

LIVE_UPDATE_SECONDS = 2.0


@dataclass
class JobReport:
    """What a run of a job achieved; ``exit_code`` is 0 when every item is done, else 3."""

    job_id: str
    run_id: str
    status: JobStatus
    total: int | None
    done: int
    failed_items: int
    failed_partitions: int
    processed: int  # items settled by this run
    seconds: float

    @property
    def exit_code(self) -> int:
        return 0 if self.failed_items == 0 and self.failed_partitions == 0 else 3

    @property
    def throughput(self) -> float:
        return self.processed / self.seconds if self.seconds > 0 else 0.0


@dataclass
class _Tally:
    """Live counts for the progress display, updated per batch."""

    total: int | None
    resumed: int
    kept_failed: int
    started: float = field(default_factory=time.monotonic)
    done: int = 0
    failed: int = 0
    unread: int = 0  # items of partitions that failed before yielding them

    def snapshot(self) -> Snapshot:
        elapsed = max(1e-9, time.monotonic() - self.started)
        completed = self.resumed + self.kept_failed + self.done + self.failed + self.unread
        return Snapshot(self.total, completed, self.resumed + self.done,
                        self.kept_failed + self.failed, self.resumed, (self.done + self.failed) / elapsed)


def run_job(
    job: JobConfig,
    *,
    store: Store | None = None,
    state_home: Path | None = None,
    engine: Engine | None = None,
    retry_failed: bool = False,
    progress: ProgressReporter | None = None,
    config_file: str | None = None,
    project: str = JOBS_PROJECT,
    recompute: bool = False,
) -> JobReport:
    """Run (or resume) ``job`` to the end and return its report.

    ``recompute`` processes every item again, settled or not (a pipeline's forced step).
    ``store`` defaults to ``$TIDAL_TRACKING_URI`` or the embedded SQLite file of ``state_home``
    (``$TIDAL_HOME``); the job's lock is always a file in ``state_home``.

    Example::

        [job] = tidal.load_config("job.hjson")
        report = tidal.run_job(job, engine=InlineEngine())
    """
    folder = state_home or home()
    work = Work(job.job_id, job.build_source(), job.processor_spec)
    job.build_processor()  # constructor checks run before any work
    engine = engine or job.build_engine()
    with JobLock(folder, job.job_id), _started(engine, work):
        owned = store is None
        store = store or open_store(home=folder)
        try:
            ledger = store.ledger(job.job_id)
            try:
                return _run_locked(job, store, ledger, engine, work, retry_failed,
                                   progress or ProgressReporter(), config_file, project, recompute)
            finally:
                ledger.close()
        finally:
            if owned:
                store.close()


@contextmanager
def _started(engine: Engine, work: Work) -> Iterator[None]:
    """The engine's workers start (and set up) while the store opens and the partitions are listed."""
    engine.start(work)
    try:
        yield
    finally:
        engine.close()


def _run_locked(job: JobConfig, store: Store, ledger: Ledger, engine: Engine, work: Work, retry_failed: bool,
                progress: ProgressReporter, config_file: str | None, project: str,
                recompute: bool = False) -> JobReport:
    plan = Plan(ledger, work.source.partitions(), retry_failed, recompute=recompute)
    ledger.register(job.name, job.canonical, config_file)
    ledger.set_status(JobStatus.RUNNING, plan.total)
    before = ledger.counts()
    tally = _Tally(plan.total, before.done, 0 if retry_failed else before.failed_items)
    run = Run(store, project=project, name=job.name, kind="job", config=job.canonical | engine.describe(),
              job_id=job.job_id)
    progress.start(job.job_id, job.name, tally.snapshot())
    status = RunStatus.INTERRUPTED
    try:
        _consume(engine.run(work, plan.tasks()), ledger, plan, tally, progress, run)
        status = RunStatus.COMPLETED
    except Exception:
        status = RunStatus.FAILED
        raise
    finally:
        report = _finish(job, ledger, run, tally, status, progress)
    return report


def _consume(messages: Any, ledger: Ledger, plan: Plan, tally: _Tally,
             progress: ProgressReporter, run: Run) -> None:
    last_live = time.monotonic()
    for message in messages:
        ledger.record(message)
        _count(message, plan, tally)
        progress.update(tally.snapshot())
        if time.monotonic() - last_live >= LIVE_UPDATE_SECONDS:
            last_live = time.monotonic()
            run.set_stats(_stats(tally))


def _count(message: BatchMessage, plan: Plan, tally: _Tally) -> None:
    tally.failed += message.failed
    tally.done += len(message.rows) - message.failed
    expected = plan.expected.get(message.partition_id)
    if expected is None:
        return
    expected -= len(message.rows)
    plan.expected[message.partition_id] = expected
    if message.end is not None and expected > 0:
        tally.unread += expected


def _finish(job: JobConfig, ledger: Ledger, run: Run, tally: _Tally,
            status: RunStatus, progress: ProgressReporter) -> JobReport:
    ledger.flush()
    counts = ledger.counts()
    if status is RunStatus.COMPLETED:
        clean = counts.failed_items == 0 and counts.failed_partitions == 0
        job_status = JobStatus.COMPLETED if clean else JobStatus.FAILED
    else:
        job_status = JobStatus(status.value)
    ledger.set_status(job_status)
    run.finish(status, stats=_stats(tally))
    progress.stop(tally.snapshot())
    return JobReport(job.job_id, run.id, job_status, tally.total, counts.done, counts.failed_items,
                     counts.failed_partitions, tally.done + tally.failed,
                     time.monotonic() - tally.started)


def _stats(tally: _Tally) -> dict[str, Any]:
    snapshot = tally.snapshot()
    return {"total": snapshot.total, "completed": snapshot.completed, "done": snapshot.done,
            "failed": snapshot.failed, "resumed": snapshot.resumed,
            "items_per_second": round(snapshot.rate, 3), "eta_seconds": snapshot.eta_seconds}
