"""``tidal results export`` and ``tidal results summary``."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from tidal.cli._common import StoreOption, console, job_id_from, reading_store
from tidal.pipelines.results import current_results
from tidal.sinks.export import export as export_results
from tidal.sinks.summary import STATISTICS, summarize

StepOption = Annotated[Optional[str], typer.Option(help="The step of a pipeline config (tidal run).")]

app = typer.Typer(help="Export and summarise a job's results.", no_args_is_help=True)


@app.command("export")
def export(
    job: Annotated[str, typer.Argument(help="Job id (or prefix) or the config file defining it.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="File to write.")],
    format: Annotated[str, typer.Option("--format", "-f", help="parquet, jsonl or csv.")] = "parquet",
    include_failed: Annotated[
        bool, typer.Option("--include-failed", help="Also failed items, with their error.")
    ] = False,
    stage: Annotated[Optional[int], typer.Option(help="Stage of a multi-stage config.")] = None,
    step: StepOption = None,
    store: StoreOption = None,
) -> None:
    """Write one row per item: key, path, frame_index, ..., then the processor's fields."""
    found = current_results(reading_store(store), job)
    count = export_results(found, job_id_from(found, job, stage, step), output, format, include_failed)
    typer.echo(f"wrote {count} rows to {output}", err=True)


@app.command("summary")
def summary(
    job: Annotated[str, typer.Argument(help="Job id (or prefix) or the config file defining it.")],
    by: Annotated[Optional[str], typer.Option(help="Group by a field: video, path, member...")] = None,
    fields: Annotated[Optional[list[str]], typer.Option(
        "--fields", help="Only fields matching these patterns, e.g. 'shares*'.")] = None,
    format: Annotated[str, typer.Option("--format", "-f", help="table, csv or json.")] = "table",
    stage: Annotated[Optional[int], typer.Option(help="Stage of a multi-stage config.")] = None,
    step: StepOption = None,
    store: StoreOption = None,
) -> None:
    """Count, mean, std, min, quartiles and max of every numeric result field, per group."""
    found = current_results(reading_store(store), job)
    records = summarize(found, job_id_from(found, job, stage, step), by, fields)
    if format == "json":
        typer.echo(json.dumps(records, indent=2))
    elif format == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=["group", "field", *STATISTICS])
        writer.writeheader()
        writer.writerows(records)
    elif format == "table":
        _table(records)
    else:
        raise typer.BadParameter(f"unknown format {format!r}; use table, csv or json", param_hint="--format")


def _table(records: list[dict]) -> None:  # type: ignore[type-arg]
    groups = {str(record["group"]) for record in records}
    names = {Path(group).name for group in groups}
    short = len(names) == len(groups)  # file names alone are unambiguous: show them
    table = Table("group", "field", *STATISTICS)
    for record in records:
        group = str(record["group"])
        numbers = [f"{record[name]:.4g}" for name in STATISTICS]
        table.add_row(Path(group).name if short else group, record["field"], *numbers)
    console().print(table)
