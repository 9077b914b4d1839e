"""``tidal submit script.py [ARGS] --address http://head:8265 --gpus 1``: run a script on a Ray cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from tidal.cli._common import StoreOption
from tidal.cli.server import parse_size
from tidal.errors import UsageError
from tidal.remote.follow import exit_code, follow
from tidal.remote.submit import submit as submit_script
from tidal.tracking.stores import open_store

CONTEXT = {"allow_extra_args": True, "ignore_unknown_options": True}


def submit(
    script: Annotated[Path, typer.Argument(help="The Python script to run, in the working directory.")],
    args: Annotated[Optional[list[str]], typer.Argument(help="The script's own arguments.")] = None,
    address: Annotated[Optional[str], typer.Option(
        help="The Ray head's dashboard (Jobs API), e.g. http://head:8265 (default: TIDAL_RAY_ADDRESS).")] = None,
    cpus: Annotated[float, typer.Option(help="CPUs the script holds (Ray's CPU).")] = 1.0,
    gpus: Annotated[float, typer.Option(help="GPUs the script holds; fractions share one (0.25).")] = 0.0,
    memory: Annotated[Optional[str], typer.Option(help="Memory the script holds, e.g. 8GiB.")] = None,
    requirements: Annotated[Optional[Path], typer.Option(
        help="A requirements file installed into the job's environment on the cluster.")] = None,
    uv: Annotated[bool, typer.Option("--uv", help="Install the requirements with uv instead of pip.")] = False,
    image: Annotated[Optional[str], typer.Option(
        help="A container image to run in (Ray's image_uri; the cluster needs podman).")] = None,
    project: Annotated[str, typer.Option(help="The run's project.")] = "default",
    name: Annotated[Optional[str], typer.Option(help="The run's name (default: the script's).")] = None,
    priority: Annotated[int, typer.Option(help="Higher runs leave the queue first.")] = 0,
    env: Annotated[Optional[list[str]], typer.Option(help="KEY=VALUE for the script's environment (repeat).")] = None,
    folder: Annotated[Optional[Path], typer.Option(help="The folder sent (default: the working directory).")] = None,
    max_size: Annotated[Optional[str], typer.Option(
        help="The largest folder sent, e.g. 500MiB (default: TIDAL_SUBMIT_MAX_SIZE, 100MiB).")] = None,
    tracking_uri: Annotated[Optional[str], typer.Option(
        help="The tidal server as the cluster reaches it (default: TIDAL_TRACKING_URI).")] = None,
    follow_output: Annotated[bool, typer.Option("--follow", "-f", help="Stream the output until it ends.")] = False,
    store: StoreOption = None,
) -> None:
    """Run a script on a Ray cluster as a tracked run: its code, requirements and resources.

    With a tidal server (TIDAL_TRACKING_URI) the run waits in its queue until the cluster has the
    resources; without one it goes to Ray at once. Options after the script that tidal does not
    know are the script's; put `--` before the script's own options that share a name with tidal's.
    """
    opened = open_store(store)
    submission = submit_script(
        script, list(args or []), address=address, cpus=cpus, gpus=gpus,
        memory=parse_size(memory, "--memory") if memory else 0.0, requirements=requirements,
        installer="uv" if uv else "pip", image=image, project=project, name=name, priority=priority,
        folder=folder, max_bytes=parse_size(max_size, "--max-size") if max_size else None,
        tracking_uri=tracking_uri, env=_pairs(env or []), store=opened)
    where = ("waits in the queue of " + opened.describe()) if submission.status == "waiting" else \
        f"was handed to Ray at {submission.address}"
    typer.echo(f"run {submission.run_id} {where}" + (f" ({submission.reason})" if submission.reason else ""), err=True)
    if not follow_output:
        typer.echo(f"follow it: tidal logs {submission.run_id} --follow", err=True)
        return
    run = follow(opened, submission.run_id, lambda text: typer.echo(text, nl=False))
    typer.echo(f"run {submission.run_id} {run['status']}" + (f": {run['error']}" if run.get("error") else ""),
               err=True)
    raise typer.Exit(exit_code(run))


def _pairs(values: list[str]) -> dict[str, str]:
    pairs = {}
    for value in values:
        key, equals, text = value.partition("=")
        if not equals or not key:
            raise UsageError(f"--env {value!r}: write KEY=VALUE")
        pairs[key] = text
    return pairs
