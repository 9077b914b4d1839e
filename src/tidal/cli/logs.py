"""``tidal logs RUN [--follow]``: a run's output (Ray's log of a submitted run, else its console)."""

from __future__ import annotations

from typing import Annotated

import typer

from tidal.cli._common import StoreOption, reading_store
from tidal.remote.follow import exit_code, follow, show_once


def logs(
    run: Annotated[str, typer.Argument(help="Run id, or a unique prefix of one.")],
    follow_output: Annotated[bool, typer.Option("--follow", "-f", help="Keep streaming until the run ends.")] = False,
    store: StoreOption = None,
) -> None:
    """Print what a run wrote; with --follow, go on until it ends (exit 0 when it completed)."""
    opened = reading_store(store)
    run_id = opened.find_run(run)

    def write(text: str) -> None:
        typer.echo(text, nl=False)

    if not follow_output:
        show_once(opened, run_id, write)
        return
    ended = follow(opened, run_id, write)
    typer.echo(f"run {run_id} {ended['status']}" + (f": {ended['error']}" if ended.get("error") else ""), err=True)
    raise typer.Exit(exit_code(ended))
