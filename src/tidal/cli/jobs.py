"""``tidal jobs ls`` and ``tidal jobs show JOB``: state, counts, failures with their errors."""

from __future__ import annotations

import datetime
import json
from typing import Annotated, Optional

import typer
from rich.table import Table

from tidal.cli._common import StoreOption, console, job_id_from, reading_store
from tidal.errors import JobNotFound, UsageError

app = typer.Typer(help="List and inspect jobs.", no_args_is_help=True)


@app.command("ls")
def ls(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
       store: StoreOption = None) -> None:
    """List jobs, most recently updated first."""
    jobs = reading_store(store).list_jobs()
    if as_json:
        typer.echo(json.dumps(jobs, indent=2))
        return
    table = Table("job", "name", "status", "done", "failed", "total", "updated")
    for job in jobs:
        table.add_row(job["id"], job["name"], job["status"], str(job["done"]), str(job["failed"]),
                      "?" if job["total_items"] is None else str(job["total_items"]), _when(job["updated_at"]))
    console().print(table)


@app.command("show")
def show(
    job: Annotated[str, typer.Argument(help="Job id (or prefix) or the config file defining it.")],
    failures: Annotated[int, typer.Option(help="How many failures to list.")] = 20,
    stage: Annotated[Optional[int], typer.Option(help="Stage of a multi-stage config.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    store: StoreOption = None,
) -> None:
    """Show a job: status, counts, runs, and its failures with their errors and item keys."""
    found = reading_store(store)
    job_id = job_id_from(found, job, stage)
    try:
        detail = found.get_job(job_id, failures)
    except JobNotFound:
        raise UsageError(f"job {job_id} ({job}) has not run in this TIDAL_HOME yet; `tidal map {job}` runs it"
                         ) from None
    if as_json:
        typer.echo(json.dumps(detail, indent=2))
        return
    _print_detail(detail)


def _print_detail(detail: dict) -> None:  # type: ignore[type-arg]
    output = console()
    output.print(f"[bold]job {detail['id']}[/] {detail['name']} — {detail['status']}")
    output.print(f"items: {detail['done']} done, {detail['failed']} failed, total "
                  f"{detail['total_items'] if detail['total_items'] is not None else '?'}; "
                  f"partitions: {detail['partitions_done']} done, {detail['partitions_failed']} failed")
    if detail["config_file"]:
        output.print(f"config: {detail['config_file']}")
    for run in detail["runs"]:
        stats = run.get("stats") or {}
        output.print(f"run {run['id']} {run['status']} {_when(run['started_at'])}: "
                      f"{stats.get('items_per_second', 0)} items/s")
    if detail["failures"]:
        table = Table("kind", "key / partition", "error", title="failures")
        for failure in detail["failures"]:
            table.add_row(failure["kind"], failure["key"], failure["error"])
        output.print(table)


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return datetime.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")
