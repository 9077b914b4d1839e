"""``tidal queue ls/cancel/retry``: runs submitted to Ray, waiting for resources or running there."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from tidal.cli._common import StoreOption, console, reading_store
from tidal.remote.queue import ENDED, queue_view, refreshed_entries
from tidal.remote.queue import cancel as cancel_run
from tidal.remote.queue import retry as retry_run
from tidal.status import QueueStatus

app = typer.Typer(help="Runs submitted to Ray (tidal submit): waiting, running, ended.", no_args_is_help=True)
RunArgument = Annotated[str, typer.Argument(help="Run id, or a unique prefix of one.")]


@app.command("ls")
def ls(
    show_all: Annotated[bool, typer.Option("--all", help="Also ended runs (done, failed, cancelled, lost).")] = False,
    limit: Annotated[int, typer.Option(help="At most this many entries.")] = 200,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    store: StoreOption = None,
) -> None:
    """Submitted runs, highest priority first, with why each one waits."""
    opened = reading_store(store)
    statuses = None if show_all else [s.value for s in QueueStatus if s.value not in ENDED]
    entries = queue_view(refreshed_entries(opened, statuses, limit))
    if as_json:
        typer.echo(json.dumps(entries, indent=2, default=str))
        return
    table = Table("run", "script", "status", "priority", "asks", "waited", "reason", "ray job")
    for entry in entries:
        table.add_row(entry["run_id"][:8], entry["spec"].get("script", ""), entry["status"], str(entry["priority"]),
                      entry["resources"], f"{entry['waited']:.0f}s", entry.get("reason") or "",
                      entry.get("ray_job_id") or "")
    console().print(table if entries else "no submitted runs" + ("" if show_all else " waiting or running (--all)"))


@app.command("cancel")
def cancel(run: RunArgument, store: StoreOption = None) -> None:
    """Cancel one run: out of the queue if it waits, stopped on Ray if it runs."""
    opened = reading_store(store)
    run_id = opened.find_run(run)
    typer.echo(f"run {run_id}: {cancel_run(opened, run_id)}")


@app.command("retry")
def retry(run: RunArgument, store: StoreOption = None) -> None:
    """Queue an ended run again (the same code and requirements, the same run)."""
    opened = reading_store(store)
    run_id = opened.find_run(run)
    typer.echo(f"run {run_id}: {retry_run(opened, run_id)}")
