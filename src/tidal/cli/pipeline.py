"""``tidal run PIPELINE`` and ``tidal pipeline show|explain``: pipelines with cached steps."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from tidal.cli._common import StoreOption, console, reading_store
from tidal.engines.base import Engine
from tidal.jobs.progress import BarProgress, LogProgress, ProgressReporter
from tidal.pipelines.config import load_pipeline
from tidal.pipelines.explain import explain_item, explain_step
from tidal.pipelines.runner import PipelineReport, run_pipeline
from tidal.pipelines.state import step_states

app = typer.Typer(help="Show a pipeline's steps and why each is cached or stale.", no_args_is_help=True)
ConfigArgument = Annotated[Path, typer.Argument(help="Pipeline config file (hjson, JSON, YAML or TOML).")]


def run(
    config: ConfigArgument,
    start: Annotated[Optional[str], typer.Option("--from", help="Force this step and every step after it.")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Run every step again, cached or not.")] = False,
    workers: Annotated[Optional[int], typer.Option(help="Worker processes (default: the config's, else all cores).")]
    = None,
    engine: Annotated[Optional[str], typer.Option(help="local or inline (overrides the config).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Log lines instead of progress bars.")] = False,
) -> None:
    """Run what is stale in a pipeline and reuse what is cached; one progress view per step.

    Exit code 0 when every step is clean, 3 when some items failed (they are retried by the next
    run), 2 for config errors (checked for the whole pipeline before any work).
    """
    pipeline = load_pipeline(config)
    if start is not None:
        pipeline.step(start)  # an unknown step is an error before any work
    try:
        report = run_pipeline(pipeline, engine=_engine(engine, workers), start=start, no_cache=no_cache,
                              progress=LogProgress if quiet else _bar)
    except KeyboardInterrupt:
        typer.echo(f"interrupted: finished items are saved; run `tidal run {config}` again to go on", err=True)
        raise typer.Exit(130) from None
    _print_report(report)
    raise typer.Exit(report.exit_code)


def _bar() -> ProgressReporter:
    return BarProgress()


def _engine(name: str | None, workers: int | None) -> Engine | None:
    if name is None and workers is None:
        return None
    if name == "inline":
        from tidal.engines.inline import InlineEngine

        return InlineEngine()
    if name not in (None, "local"):
        raise typer.BadParameter(f"unknown engine {name!r}; use local or inline", param_hint="--engine")
    from tidal.engines.local import LocalEngine

    return LocalEngine(workers=workers) if workers else LocalEngine()


def _print_report(report: PipelineReport) -> None:
    for step in report.steps:
        why = f" ({'; '.join(step.reasons)})" if step.reasons and step.outcome != "cached" else ""
        counts = "" if step.outcome == "cached" else (
            f": {step.processed} processed, {step.done} done, {step.failed} failed in {step.seconds:.1f}s")
        typer.echo(f"step {step.name} [{step.job_id}] {step.outcome}{why}{counts}", err=True)


@app.command("show")
def show(config: ConfigArgument, store: StoreOption = None) -> None:
    """The steps in order: each one's job, cached or stale and why, and its counts."""
    pipeline = load_pipeline(config)
    found = reading_store(store)
    table = Table("step", "kind", "job", "status", "why", "done", "failed")
    for name, state in step_states(pipeline, found).items():
        if state.step.kind == "source":
            table.add_row(name, "source", "", f"{len(state.partitions)} partitions", "", "", "")
            continue
        counts = _counts(found, state.job_id)
        status = "cached" if state.cached else "stale"
        table.add_row(name, state.step.kind, state.job_id, status, "; ".join(state.reasons), *counts)
    console().print(table)


def _counts(store: object, job_id: str) -> tuple[str, str]:
    from tidal.tracking.store import Store

    assert isinstance(store, Store)
    if not store.has_job(job_id):
        return "", ""
    job = store.get_job(job_id, max_failures=0)
    return str(job.get("done", "")), str(job.get("failed", ""))


@app.command("explain")
def explain(
    config: ConfigArgument,
    step: Annotated[str, typer.Argument(help="The step.")],
    item: Annotated[Optional[str], typer.Argument(help="An item key (or the start of one, e.g. a path).")] = None,
    store: StoreOption = None,
) -> None:
    """Why a step, or one item of it, is a cache hit or a miss."""
    pipeline = load_pipeline(config)
    found = reading_store(store)
    lines = explain_item(pipeline, found, step, item) if item else explain_step(pipeline, found, step)
    for line in lines:
        typer.echo(line)
