"""``tidal map CONFIG``: run (or resume) a config's job(s) over their source."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from tidal.config.job import ENGINES, load_config
from tidal.engines.base import Engine
from tidal.jobs.progress import BarProgress, LogProgress, ProgressReporter
from tidal.jobs.runner import JOBS_PROJECT, run_job


def map_(
    config: Annotated[Path, typer.Argument(help="Job config file (hjson, JSON, YAML or TOML).")],
    workers: Annotated[Optional[int], typer.Option(help="Worker processes (default: all cores).")] = None,
    engine: Annotated[Optional[str], typer.Option(help="local, inline or ray (overrides the config).")] = None,
    address: Annotated[Optional[str], typer.Option(
        help="The Ray cluster for --engine ray: ray://head:10001 or head:6379 (default: $RAY_ADDRESS or a"
             " Ray started for the job).")] = None,
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
    jobs = load_config(config, _engine_override(config, engine, workers, address))
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


def _engine_override(config: Path, engine: str | None, workers: int | None,
                     address: str | None) -> dict[str, object] | None:
    """The ``engine`` key the options make; settings the config gives the same engine are kept."""
    if engine is None and workers is None and address is None:
        return None
    name = engine or ("ray" if address is not None else "local")
    settings: dict[str, object] = {}
    if workers is not None and name != "inline":
        settings["concurrency" if name == "ray" else "workers"] = workers
    if address is not None:
        if name != "ray":
            raise typer.BadParameter("--address is the Ray cluster's: use it with --engine ray", param_hint="--address")
        settings["address"] = address
    return {"engine": {name: _configured(config, name) | settings}}


def _configured(config: Path, name: str) -> dict[str, object]:
    """The settings the config's first stage gives engine ``name`` (e.g. ray's num_gpus), else none."""
    first = load_config(config)[0].engine
    return dict(first.kwargs) if first.target == ENGINES.get(name) else {}


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
