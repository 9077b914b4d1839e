"""``tidal map CONFIG``: run (or resume) a config's job(s) over their source."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from tidal.config.job import load_config
from tidal.engines.base import Engine
from tidal.jobs.progress import BarProgress, LogProgress, ProgressReporter
from tidal.jobs.runner import JOBS_PROJECT, run_job


def map_(
    config: Annotated[Path, typer.Argument(help="Job config file (hjson, JSON, YAML or TOML).")],
    workers: Annotated[Optional[int], typer.Option(help="Worker processes (default: all cores).")] = None,
    engine: Annotated[Optional[str], typer.Option(help="local or inline (overrides the config).")] = None,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Retry failed items and partitions.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Log lines instead of a progress bar.")] = False,
    stage: Annotated[Optional[int], typer.Option(help="Run only this stage (0-based).")] = None,
    project: Annotated[str, typer.Option(help="The project the job's runs are recorded in.")] = JOBS_PROJECT,
) -> None:
    """Run the job a config defines; the same command again resumes it where it stopped.

    Exit code 0 when every item succeeded, 3 when some failed (see `tidal jobs show`). The job and
    its run go to $TIDAL_TRACKING_URI when set (a team's PostgreSQL or tidal server), else to the
    embedded store in $TIDAL_HOME.
    """
    jobs = load_config(config, _engine_override(engine, workers))
    selected = jobs if stage is None else [jobs[stage]] if 0 <= stage < len(jobs) else []
    if not selected:
        raise typer.BadParameter(f"{config} has stages 0..{len(jobs) - 1}", param_hint="--stage")
    exit_code = 0
    for job in selected:
        engine_object: Engine = job.build_engine()
        try:
            report = run_job(job, engine=engine_object, retry_failed=retry_failed,
                             progress=_reporter(quiet), config_file=str(config.resolve()), project=project)
        except KeyboardInterrupt:
            typer.echo(f"interrupted: results so far are saved; run `tidal map {config}` again to resume",
                       err=True)
            raise typer.Exit(130) from None
        _print_report(report)
        exit_code = max(exit_code, report.exit_code)
    raise typer.Exit(exit_code)


def _engine_override(engine: str | None, workers: int | None) -> dict[str, object] | None:
    if engine is None and workers is None:
        return None
    name = engine or "local"
    settings = {"workers": workers} if workers is not None and name != "inline" else {}
    return {"engine": {name: settings}}


def _reporter(quiet: bool) -> ProgressReporter:
    return LogProgress() if quiet else BarProgress()


def _print_report(report: object) -> None:
    from tidal.jobs.runner import JobReport

    assert isinstance(report, JobReport)
    failures = ""
    if report.exit_code:
        failures = (f"; {report.failed_items} items and {report.failed_partitions} partitions failed"
                    f" (see `tidal jobs show {report.job_id}`, retry with --retry-failed)")
    typer.echo(f"job {report.job_id} {report.status.value}: {report.done} items done, "
               f"{report.processed} processed in this run in {report.seconds:.1f}s "
               f"({report.throughput:.1f} items/s){failures}", err=True)
