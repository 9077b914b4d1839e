"""What several command groups share: the store to read, finding a job from an id or a config file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from tidal.config.job import load_config
from tidal.errors import StoreError, UsageError
from tidal.pipelines.config import is_pipeline_file
from tidal.pipelines.state import pipeline_step_job
from tidal.settings import DB_FILENAME, home, tracking_uri
from tidal.tracking.store import Store
from tidal.tracking.stores import open_store

StoreOption = Annotated[Optional[str], typer.Option(
    "--store", help="Store URL (default: $TIDAL_TRACKING_URI or the embedded store in $TIDAL_HOME).")]


def reading_store(url: str | None = None) -> Store:
    """The store a read-only command looks in; an embedded one that does not exist yet is an error
    (reading must not create a state folder)."""
    if not (url or tracking_uri()) and not (home() / DB_FILENAME).exists():
        raise StoreError(f"no tidal state in {home()}: run `tidal map` first, set TIDAL_HOME, "
                         "or point TIDAL_TRACKING_URI (or --store) at a team's store")
    return open_store(url)


def job_id_from(store: Store, reference: str, stage: int | None = None, step: str | None = None) -> str:
    """JOB may be a job id (or a unique prefix), the config file that defines it, or a pipeline
    file and one of its steps (``step``)."""
    path = Path(reference)
    if step is not None or (path.is_file() and is_pipeline_file(path)):
        return pipeline_step_job(store, path, step)
    if path.is_file():
        jobs = load_config(path)
        if stage is None and len(jobs) > 1:
            raise UsageError(f"{path} defines {len(jobs)} stages; pick one with --stage N (0-based)")
        index = stage if stage is not None else 0
        if not 0 <= index < len(jobs):
            raise UsageError(f"{path} has stages 0..{len(jobs) - 1}; --stage {index} is out of range")
        return jobs[index].job_id
    return store.find_job(reference)


def console() -> Console:
    """A rich console that does not squeeze tables into 80 columns in logs and pipes."""
    output = Console()
    if not output.is_terminal:
        output.width = max(output.width, 140)
    return output
