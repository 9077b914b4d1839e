"""``tidal config check`` and ``tidal config show``: validate a config before any work."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from tidal.config.job import load_config

app = typer.Typer(help="Validate and show config files.", no_args_is_help=True)


@app.command("check")
def check(config: Annotated[Path, typer.Argument(help="Config file.")]) -> None:
    """Resolve every name and check every argument; print the job id of each stage."""
    for index, job in enumerate(load_config(config)):
        job.build_source()  # constructors validate values the signature cannot express
        job.build_processor()  # (cheap: models load in setup())
        typer.echo(f"ok: stage {index} job {job.job_id} ({job.name})")


@app.command("show")
def show(config: Annotated[Path, typer.Argument(help="Config file.")]) -> None:
    """Print each stage's canonical form (defaults filled, keys sorted) and job id."""
    stages = [{"job_id": job.job_id, "name": job.name, **job.canonical} for job in load_config(config)]
    typer.echo(json.dumps(stages if len(stages) > 1 else stages[0], indent=2, sort_keys=True))
