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
    """Resolve every name and check every argument: a job (each stage's id), a pipeline or a training."""
    kind = _kind(config)
    if kind == "pipeline":
        from tidal.pipelines.config import load_pipeline

        pipeline = load_pipeline(config)
        typer.echo(f"ok: pipeline {pipeline.name}, steps {', '.join(pipeline.steps)}")
        return
    if kind == "training":
        from tidal.train.config import load_train_config

        training = load_train_config(config)
        typer.echo(f"ok: training {training.train_id}, {len(training.cycles)} cycle(s)")
        return
    for index, job in enumerate(load_config(config)):
        job.build_source()  # constructors validate values the signature cannot express
        job.build_processor()  # (cheap: models load in setup())
        typer.echo(f"ok: stage {index} job {job.job_id} ({job.name})")


@app.command("show")
def show(config: Annotated[Path, typer.Argument(help="Config file.")]) -> None:
    """Print each stage's canonical form (defaults filled, keys sorted) and job id."""
    stages = [{"job_id": job.job_id, "name": job.name, **job.canonical} for job in load_config(config)]
    typer.echo(json.dumps(stages if len(stages) > 1 else stages[0], indent=2, sort_keys=True))


def _kind(path: Path) -> str:
    """``pipeline`` (a ``steps`` mapping), ``training`` (cycles naming a model and a loop) or ``job``."""
    from tidal.config.files import read_config_file
    from tidal.train.config import EXAMPLES

    data = read_config_file(path)
    if isinstance(data, dict) and "steps" in data:
        return "pipeline"
    first = data[0] if isinstance(data, list) and data else data
    if isinstance(first, dict) and {"model", "train_loop"} & set(first) and not {"source", "processor"} & set(first):
        return "training" if set(EXAMPLES) & set(first) else "job"
    return "job"
