"""``tidal artifacts ls / get``: a run's stored files, from the embedded store or a server."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from tidal.cli._common import StoreOption, console
from tidal.errors import UsageError
from tidal.tracking.artifacts import normalize_name
from tidal.tracking.stores import open_store

app = typer.Typer(help="List and download a run's artifacts.", no_args_is_help=True)
RunArgument = Annotated[str, typer.Argument(help="Run id, or a unique prefix of one.")]


@app.command("ls")
def ls(run_id: RunArgument, store: StoreOption = None) -> None:
    """A run's artifacts: name, size, sha256."""
    opened = open_store(store)
    table = Table("name", "size", "sha256")
    for artifact in opened.artifacts(opened.find_run(run_id)):
        table.add_row(artifact["name"], str(artifact["size"]), artifact["sha256"][:16])
    console().print(table)


@app.command("get")
def get(run_id: RunArgument,
        name: Annotated[str, typer.Argument(help="The artifact's name, as `tidal artifacts ls RUN` shows it.")],
        output: Annotated[Optional[Path], typer.Option(
            "--output", "-o", help="File or folder to write; '-' for stdout (default: the name's last part, here).")
        ] = None,
        store: StoreOption = None) -> None:
    """Download one artifact, streamed (any size)."""
    opened = open_store(store)
    found = opened.find_run(run_id)
    name = normalize_name(name)
    target = _target(output, name)
    with opened.open_artifact(found, name) as source:
        if target is None:
            shutil.copyfileobj(source, sys.stdout.buffer)
            return
        partial = target.with_name(f".{target.name}.part")
        with partial.open("wb") as sink:
            shutil.copyfileobj(source, sink, 1024 * 1024)
        partial.replace(target)  # a broken download never leaves a file that looks complete
    typer.echo(f"wrote {name} of run {found} to {target}", err=True)


def _target(output: Path | None, name: str) -> Path | None:
    if output is not None and str(output) == "-":
        return None
    target = output or Path(name.rsplit("/", 1)[-1])
    if target.is_dir():
        target = target / name.rsplit("/", 1)[-1]
    if not target.parent.is_dir():
        raise UsageError(f"cannot write {target}: the folder {target.parent} does not exist; create it or pass -o")
    return target
