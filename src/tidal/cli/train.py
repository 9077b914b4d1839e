"""``tidal train CONFIG``: train what a config names, tracked; ``--resume`` goes on after a kill.

This module stays light (no torch at import): the command imports the trainer when it runs, after
the config is checked, so a misspelled name fails at once with exit 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from tidal.cli._common import StoreOption


def train(
    config: Annotated[Path, typer.Argument(help="Training config (hjson, JSON, YAML or TOML).")],
    resume: Annotated[bool, typer.Option("--resume", help="Go on from the training's last checkpoint.")] = False,
    checkpoint: Annotated[Optional[str], typer.Option(
        help="Resume from this checkpoint (RUN/checkpoints/step-NNNNNNNNN.pt), even under a changed config.")] = None,
    check: Annotated[bool, typer.Option("--check", help="Only check the config (every name and argument).")] = False,
    engine: Annotated[str, typer.Option(help="Where to train: local (this process).")] = "local",
    workers: Annotated[Optional[int], typer.Option(help="Data-parallel workers (the ray engine).")] = None,
    project: Annotated[str, typer.Option(help="The project the run is recorded in.")] = "train",
    store: StoreOption = None,
) -> None:
    """Train the datasets, model, loss and optimizer a config names, cycle after cycle.

    Each epoch ends with an evaluation and a checkpoint (a run artifact); SIGTERM or Ctrl-C saves
    one and exits 143 or 130. Exit codes: 0 done, 1 the training failed, 2 a config error.
    """
    from tidal.errors import UsageError
    from tidal.train.config import load_train_config

    train_config = load_train_config(config)
    if check:
        typer.echo(f"ok: training {train_config.train_id}, {len(train_config.cycles)} cycle(s)")
        return
    if engine != "local" or workers is not None:
        raise UsageError(f"--engine {engine} --workers {workers}: only the local engine is available; "
                         "Ray Train needs the ray extra and is not built yet")
    from tidal.tracking.stores import open_store
    from tidal.train.trainer import fit

    opened = open_store(store)
    try:
        report = fit(train_config, resume=resume, checkpoint=checkpoint, store=opened, project=project)
    finally:
        opened.close()
    _print_report(report, config)
    raise typer.Exit(report.exit_code)


def _print_report(report: object, config: Path) -> None:
    from tidal.train.trainer import TrainReport

    assert isinstance(report, TrainReport)
    metrics = ", ".join(f"{key} {value:.4g}" for key, value in sorted(report.metrics.items()))
    typer.echo(f"training {report.train_id} {report.status.value} after {report.steps} steps in "
               f"{report.seconds:.1f}s (run {report.run_id}){': ' + metrics if metrics else ''}", err=True)
    if report.stopped_by:
        typer.echo(f"stopped by {report.stopped_by}; checkpoint {report.checkpoint} saved: "
                   f"`tidal train {config} --resume` goes on from it", err=True)
