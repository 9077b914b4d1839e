"""``tidal train CONFIG``: train what a config names, tracked; ``--resume`` goes on after a kill.

This module stays light (no torch at import): the command imports the trainer when it runs, after
the config is checked, so a misspelled name fails at once with exit 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from tidal.cli._common import StoreOption

if TYPE_CHECKING:
    from tidal.train.config import TrainConfig
    from tidal.train.trainer import TrainReport


def train(
    config: Annotated[Path, typer.Argument(help="Training config (hjson, JSON, YAML or TOML).")],
    resume: Annotated[bool, typer.Option("--resume", help="Go on from the training's last checkpoint.")] = False,
    checkpoint: Annotated[Optional[str], typer.Option(
        help="Resume from this checkpoint (RUN/checkpoints/step-NNNNNNNNN.pt), even under a changed config.")] = None,
    check: Annotated[bool, typer.Option("--check", help="Only check the config (every name and argument).")] = False,
    engine: Annotated[str, typer.Option(help="Where to train: local (this process) or ray (Ray Train).")] = "local",
    workers: Annotated[Optional[int], typer.Option(help="Data-parallel workers (the ray engine; default 2).")] = None,
    address: Annotated[Optional[str], typer.Option(
        help="The Ray cluster for --engine ray: ray://head:10001 or head:6379 (default: $RAY_ADDRESS, a Ray "
             "started here, or a new local one).")] = None,
    gpus_per_worker: Annotated[float, typer.Option(help="GPUs each Ray worker holds (NCCL when above 0).")] = 0.0,
    cpus_per_worker: Annotated[float, typer.Option(help="CPUs each Ray worker holds (fractions allowed).")] = 1.0,
    max_failures: Annotated[int, typer.Option(
        help="Ray: restarts of a failed worker group from the last checkpoint (-1: no limit).")] = 0,
    project: Annotated[str, typer.Option(help="The project the run is recorded in.")] = "train",
    store: StoreOption = None,
) -> None:
    """Train the datasets, model, loss and optimizer a config names, cycle after cycle.

    Each epoch ends with an evaluation and a checkpoint (a run artifact); SIGTERM or Ctrl-C saves
    one and exits 143 or 130 (on Ray: stops, the last epoch's checkpoint kept). Exit codes: 0 done,
    1 the training failed, 2 a config error.
    """
    from tidal.errors import UsageError
    from tidal.train.config import load_train_config

    train_config = load_train_config(config)
    if check:
        typer.echo(f"ok: training {train_config.train_id}, {len(train_config.cycles)} cycle(s)")
        return
    if engine not in ("local", "ray"):
        raise UsageError(f"--engine {engine}: use local (this process) or ray (Ray Train, data-parallel)")
    if engine == "local" and (workers is not None or address is not None):
        raise UsageError("--workers and --address are Ray Train's: add --engine ray (the local engine trains "
                         "in this process)")
    if engine == "ray":
        from tidal.train.ray import RayTrain

        ray_train = RayTrain(workers=2 if workers is None else workers, address=address,
                             cpus_per_worker=cpus_per_worker, gpus_per_worker=gpus_per_worker,
                             max_failures=max_failures)
        report = ray_train.fit(train_config, store_uri=store, project=project, resume=resume, checkpoint=checkpoint)
    else:
        report = _fit_here(train_config, store, project, resume, checkpoint)
    _print_report(report, f"{config} --engine ray" if engine == "ray" else str(config))
    raise typer.Exit(report.exit_code)


def _fit_here(train_config: TrainConfig, store: str | None, project: str, resume: bool,
              checkpoint: str | None) -> TrainReport:
    from tidal.tracking.stores import open_store
    from tidal.train.trainer import fit

    opened = open_store(store)
    try:
        return fit(train_config, resume=resume, checkpoint=checkpoint, store=opened, project=project)
    finally:
        opened.close()


def _print_report(report: TrainReport, command: str) -> None:
    metrics = ", ".join(f"{key} {value:.4g}" for key, value in sorted(report.metrics.items()))
    typer.echo(f"training {report.train_id} {report.status.value} after {report.steps} steps in "
               f"{report.seconds:.1f}s (run {report.run_id}){': ' + metrics if metrics else ''}", err=True)
    if report.stopped_by:
        typer.echo(f"stopped by {report.stopped_by}; checkpoint {report.checkpoint} saved: "
                   f"`tidal train {command} --resume` goes on from it", err=True)
