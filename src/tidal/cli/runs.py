"""``tidal runs ls / show / compare``: tracked runs from the store (embedded or a server)."""

from __future__ import annotations

import datetime
import json
import math
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from tidal.cli._common import console
from tidal.status import RunStatus
from tidal.tracking.store import Store
from tidal.tracking.stores import open_store

app = typer.Typer(help="List, show and compare tracked runs.", no_args_is_help=True)
StoreOption = Annotated[Optional[str], typer.Option(
    "--store", help="Store URL (default: $TIDAL_TRACKING_URI or the embedded store).")]


@app.command("ls")
def ls(
    project: Annotated[Optional[str], typer.Option(help="Only this project.")] = None,
    status: Annotated[Optional[str], typer.Option(help="running, completed, failed, interrupted, lost.")] = None,
    tag: Annotated[Optional[str], typer.Option(help="A tag name, or name=value.")] = None,
    search: Annotated[Optional[str], typer.Option(help="Text in the name, id or project.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many runs.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    store: StoreOption = None,
) -> None:
    """Runs, newest first."""
    runs = _store(store).list_runs(project=project, status=status, tag=tag, search=search, limit=limit)
    if as_json:
        typer.echo(json.dumps(runs, indent=2, default=str))
        return
    table = Table("run", "project", "name", "kind", "status", "started", "duration", "tags")
    for run in runs:
        table.add_row(run["id"], run["project"], run["name"], run["kind"], run["status"],
                      _when(run["started_at"]), _duration(run), ", ".join(run["tags"]))
    console().print(table)


@app.command("show")
def show(run_id: Annotated[str, typer.Argument(help="Run id.")],
         as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
         store: StoreOption = None) -> None:
    """A run: status, params, config, last metric values, artifacts, git state."""
    opened = _store(store)
    run = opened.get_run(run_id)
    metrics = {key: points[-1][1] for key, points in opened.metrics(run_id).items()}
    if as_json:
        detail = run | {"metrics": metrics, "artifacts": opened.artifacts(run_id)}
        typer.echo(json.dumps(detail, indent=2, default=_json_number))
        return
    output = console()
    output.print(f"[bold]{run['name']}[/] {run['id']} ({run['project']}, {run['kind']}) — {run['status']}")
    output.print(f"started {_when(run['started_at'])}, duration {_duration(run)}, host {run['host']}")
    if run.get("error"):
        output.print(f"[red]{run['error'].strip().splitlines()[-1]}[/]")
    _key_values(output, "params", run["params"])
    _key_values(output, "metrics (last value)", metrics)
    for artifact in opened.artifacts(run_id):
        output.print(f"artifact {artifact['name']} {artifact['size']} bytes sha256 {artifact['sha256'][:12]}")
    git = run.get("git") or {}
    if git:
        output.print(f"git {git.get('commit', '')[:12]} on {git.get('branch')}{' (dirty)' if git.get('dirty') else ''}")


@app.command("compare")
def compare(run_ids: Annotated[list[str], typer.Argument(help="Two or more run ids.")],
            store: StoreOption = None) -> None:
    """Params side by side (differences marked) and each metric's last value per run."""
    opened = _store(store)
    runs = [opened.get_run(run_id) for run_id in run_ids]
    metrics = [{k: p[-1][1] for k, p in opened.metrics(run["id"]).items()} for run in runs]
    table = Table("", *[f"{run['name']} {run['id'][:8]}" for run in runs])
    for key in sorted({k for run in runs for k in run["params"]}):
        values = [json.dumps(run["params"].get(key)) for run in runs]
        marker = "*" if len(set(values)) > 1 else ""
        table.add_row(f"{marker}{key}", *values)
    for key in sorted({k for found in metrics for k in found}):
        table.add_row(f"[cyan]{key}[/]", *[_number(found.get(key)) for found in metrics])
    console().print(table)


def _store(url: str | None) -> Store:
    return open_store(url)


def _key_values(output: Console, title: str, values: dict[str, Any]) -> None:
    if values:
        output.print(f"[bold]{title}[/]: " + ", ".join(f"{k}={_number(v)}" for k, v in sorted(values.items())))


def _number(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else "-" if value is None else str(value)


def _json_number(value: Any) -> Any:
    return str(value)


def _when(timestamp: float | None) -> str:
    if not timestamp:
        return "-"
    return datetime.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")


def _duration(run: dict[str, Any]) -> str:
    running = run["status"] == RunStatus.RUNNING.value
    end = run.get("ended_at") or (datetime.datetime.now().timestamp() if running else None)
    if not end:
        return "-"
    seconds = max(0.0, end - run["started_at"])
    return str(datetime.timedelta(seconds=math.floor(seconds)))
