"""``tidal runs``: list, show, compare, export and manage tracked runs (embedded store or a server).

Every RUN argument is a full id or a unique prefix of one (the 8 characters the dashboard and
``runs ls`` show).
"""

from __future__ import annotations

import datetime
import json
import math
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from tidal.cli._common import console
from tidal.errors import UsageError
from tidal.sinks.export import write_rows
from tidal.status import RunStatus
from tidal.tracking.store import Store, check_status, flatten
from tidal.tracking.stores import open_store

app = typer.Typer(help="List, show, compare, export and manage tracked runs.", no_args_is_help=True)
StoreOption = Annotated[Optional[str], typer.Option(
    "--store", help="Store URL (default: $TIDAL_TRACKING_URI or the embedded store).")]
RunArgument = Annotated[str, typer.Argument(help="Run id, or a unique prefix of one.")]
SHORT_ID = 8
EXPORT_FORMATS = ("csv", "parquet", "jsonl")


@app.command("ls")
def ls(
    project: Annotated[Optional[str], typer.Option(help="Only this project.")] = None,
    status: Annotated[Optional[str], typer.Option(help=", ".join(s.value for s in RunStatus) + ".")] = None,
    tag: Annotated[Optional[str], typer.Option(help="A tag name, or name=value.")] = None,
    search: Annotated[Optional[str], typer.Option(help="Text in the name, id or project.")] = None,
    where: Annotated[Optional[str], typer.Option(
        help="Conditions, e.g. \"metrics.acc > 0.9 and params.optimizer = 'adam'\" (a metric: its latest value).")
    ] = None,
    sort: Annotated[Optional[str], typer.Option(
        help="started_at, name, status..., metrics.KEY or params.KEY; -FIELD (or 'FIELD desc'): descending.")] = None,
    columns: Annotated[Optional[str], typer.Option(
        "--columns", "-c", help="Extra columns, comma-separated: metrics.acc,params.lr,tags.team.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many runs (a page).")] = 50,
    offset: Annotated[int, typer.Option(help="Skip this many runs first (the next page).")] = 0,
    archived: Annotated[bool, typer.Option("--archived", help="Also archived runs.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    store: StoreOption = None,
) -> None:
    """Runs, newest first (or by --sort), filtered, a page at a time."""
    opened = _store(store)
    runs = opened.list_runs(project=project, status=check_status(status), tag=tag, search=search, where=where,
                            sort=sort, limit=limit, offset=offset, archived="include" if archived else "exclude")
    extra = [column.strip() for column in (columns or "").split(",") if column.strip()]
    values = [_column_values(opened, run, extra) for run in runs]
    if as_json:
        shown = [run | dict(zip(extra, found, strict=True)) for run, found in zip(runs, values, strict=True)]
        typer.echo(json.dumps(shown, indent=2, default=str))
        return
    table = Table("run", "project", "name", "kind", "status", "started", "duration", "tags", *extra)
    for run, found in zip(runs, values, strict=True):
        table.add_row(run["id"][:SHORT_ID], run["project"], run["name"], run["kind"], run["status"],
                      _when(run["started_at"]), _duration(run), _tags(run["tags"]), *[_number(v) for v in found])
    output = console()
    output.print(table)
    if len(runs) == limit:
        output.print(f"[dim]more runs: --offset {offset + limit}[/]")


@app.command("show")
def show(run_id: RunArgument,
         as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
         store: StoreOption = None) -> None:
    """A run: status, params, config, last metric values, notes, artifacts, git state."""
    opened = _store(store)
    run = opened.get_run(opened.find_run(run_id))
    metrics = _last_values(opened, run["id"])
    if as_json:
        detail = run | {"metrics": metrics, "artifacts": opened.artifacts(run["id"])}
        typer.echo(json.dumps(detail, indent=2, default=_json_number))
        return
    output = console()
    output.print(f"[bold]{run['name']}[/] {run['id']} ({run['project']}, {run['kind']}) — {run['status']}")
    output.print(f"started {_when(run['started_at'])}, duration {_duration(run)}, host {run['host']}")
    if run.get("error"):
        output.print(f"[red]{run['error'].strip().splitlines()[-1]}[/]")
    if run.get("notes"):
        output.print(f"[bold]notes[/]: {run['notes']}")
    _key_values(output, "tags", run["tags"])
    _key_values(output, "params", run["params"])
    _key_values(output, "metrics (last value)", metrics)
    for artifact in opened.artifacts(run["id"]):
        output.print(f"artifact {artifact['name']} {artifact['size']} bytes sha256 {artifact['sha256'][:12]}")
    git = run.get("git") or {}
    if git:
        output.print(f"git {git.get('commit', '')[:12]} on {git.get('branch')}{' (dirty)' if git.get('dirty') else ''}")


@app.command("compare")
def compare(run_ids: Annotated[list[str], typer.Argument(help="Two or more run ids (or prefixes).")],
            store: StoreOption = None) -> None:
    """Params, metrics (last values) and config side by side, each with differences marked '*'."""
    opened = _store(store)
    runs = [opened.get_run(opened.find_run(run_id)) for run_id in run_ids]
    headers = [f"{run['name']} {run['id'][:SHORT_ID]}" for run in runs]
    output = console()
    for title, documents in (("params", [run["params"] for run in runs]),
                             ("metrics (last value)", [_last_values(opened, run["id"]) for run in runs]),
                             ("config", [flatten(run.get("config") or {}) for run in runs])):
        output.print(_difference_table(title, headers, documents))


@app.command("export")
def export(run_id: RunArgument,
           metrics: Annotated[bool, typer.Option("--metrics", help="Export the metric points (the default).")] = True,
           format: Annotated[str, typer.Option("--format", "-f", help="csv, parquet or jsonl.")] = "csv",
           output: Annotated[Optional[Path], typer.Option(
               "--output", "-o", help="File to write (default: RUN_metrics.FORMAT here).")] = None,
           store: StoreOption = None) -> None:
    """Write every metric point of a run: key, step, value, timestamp, one row each."""
    if format not in EXPORT_FORMATS:
        raise UsageError(f"--format {format!r}: use one of {', '.join(EXPORT_FORMATS)}")
    opened = _store(store)
    found = opened.find_run(run_id)
    target = output or Path(f"{found}_metrics.{format}")
    rows = ({"key": key, "step": step, "value": value, "timestamp": stamp}
            for key, points in sorted(opened.metrics(found).items()) for step, value, stamp in points)
    count = write_rows(rows, target, format)
    typer.echo(f"wrote {count} metric points of run {found} to {target}", err=True)


@app.command("delete")
def delete(run_ids: Annotated[list[str], typer.Argument(help="Run ids (or prefixes).")],
           yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
           store: StoreOption = None) -> None:
    """Delete runs for good: what they logged and their artifacts."""
    opened = _store(store)
    found = [opened.find_run(run_id) for run_id in run_ids]
    if not yes:
        typer.confirm(f"delete {len(found)} run(s) ({', '.join(found)}) and their artifacts for good?", abort=True)
    for run_id in found:
        opened.delete_run(run_id)
        typer.echo(f"deleted run {run_id}", err=True)


@app.command("archive")
def archive(run_ids: Annotated[list[str], typer.Argument(help="Run ids (or prefixes).")],
            undo: Annotated[bool, typer.Option("--undo", help="Show archived runs again.")] = False,
            store: StoreOption = None) -> None:
    """Hide runs from lists (``runs ls --archived`` and ``--undo`` bring them back); nothing is deleted."""
    opened = _store(store)
    for run_id in [opened.find_run(run_id) for run_id in run_ids]:
        opened.update_run(run_id, {"archived_at": None if undo else time.time()})
        typer.echo(f"{'restored' if undo else 'archived'} run {run_id}", err=True)


@app.command("rename")
def rename(run_id: RunArgument, name: Annotated[str, typer.Argument(help="The new name.")],
           store: StoreOption = None) -> None:
    """Give a run a new name."""
    if not name.strip():
        raise UsageError("a run's name cannot be empty; pass the new name")
    opened = _store(store)
    opened.update_run(opened.find_run(run_id), {"name": name})


@app.command("note")
def note(run_id: RunArgument, text: Annotated[str, typer.Argument(help="The notes ('' clears them).")],
         store: StoreOption = None) -> None:
    """Write notes on a run (shown by ``runs show`` and the dashboard); they replace earlier notes."""
    opened = _store(store)
    opened.update_run(opened.find_run(run_id), {"notes": text or None})


def _store(url: str | None) -> Store:
    return open_store(url)


def _last_values(store: Store, run_id: str, keys: list[str] | None = None) -> dict[str, float]:
    """Each metric's value at its latest step (its last point when it has no steps)."""
    return {key: max(enumerate(points), key=lambda pair: (pair[1][0] is not None, pair[1][0] or 0, pair[0]))[1][1]
            for key, points in store.metrics(run_id, keys).items() if points}


def _column_values(store: Store, run: dict[str, Any], columns: list[str]) -> list[Any]:
    metrics = [column.partition(".")[2] for column in columns if column.startswith("metrics.")]
    last = _last_values(store, run["id"], metrics) if metrics else {}
    values = []
    for column in columns:
        scope, _, name = column.partition(".")
        if scope not in ("metrics", "params", "tags") or not name:
            raise UsageError(f"--columns: {column!r} is not metrics.KEY, params.KEY or tags.KEY")
        values.append(last.get(name) if scope == "metrics" else run.get(scope, {}).get(name))
    return values


def _difference_table(title: str, headers: list[str], documents: list[dict[str, Any]]) -> Table:
    table = Table("", *headers, title=title, title_justify="left")
    for key in sorted({key for document in documents for key in document}):
        cells = [_number(document[key]) if key in document else "-" for document in documents]
        marker = "*" if len({json.dumps(document.get(key, "\0absent"), sort_keys=True, default=str)
                             for document in documents}) > 1 else ""
        table.add_row(f"{marker}{key}", *cells)
    return table


def _key_values(output: Console, title: str, values: dict[str, Any]) -> None:
    if values:
        output.print(f"[bold]{title}[/]: " + ", ".join(f"{k}={_number(v)}" for k, v in sorted(values.items())))


def _tags(tags: dict[str, str]) -> str:
    return ", ".join(f"{key}={value}" if value else key for key, value in sorted(tags.items()))


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if value is None:
        return "-"
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _json_number(value: Any) -> Any:
    return str(value)


def _when(timestamp: float | None) -> str:
    if not timestamp:
        return "-"
    return datetime.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")


def _duration(run: dict[str, Any]) -> str:
    """Until now while running; a lost run's end is its last heartbeat (the store sets ended_at)."""
    running = run["status"] == RunStatus.RUNNING.value
    end = run.get("ended_at") or (time.time() if running else None)
    if not end:
        return "-"
    seconds = max(0.0, end - run["started_at"])
    return str(datetime.timedelta(seconds=math.floor(seconds)))
