"""What several command groups share: finding a job from an id or a config file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from rich.console import Console

from tidal.config.job import load_config
from tidal.errors import UsageError
from tidal.sinks.results import find_job


def job_id_from(db: sqlite3.Connection, reference: str, stage: int | None = None) -> str:
    """JOB may be a job id (or a unique prefix) or the config file that defines it."""
    path = Path(reference)
    if path.is_file():
        jobs = load_config(path)
        if stage is None and len(jobs) > 1:
            raise UsageError(f"{path} defines {len(jobs)} stages; pick one with --stage N (0-based)")
        index = stage if stage is not None else 0
        if not 0 <= index < len(jobs):
            raise UsageError(f"{path} has stages 0..{len(jobs) - 1}; --stage {index} is out of range")
        return jobs[index].job_id
    return find_job(db, reference)


def console() -> Console:
    """A rich console that does not squeeze tables into 80 columns in logs and pipes."""
    output = Console()
    if not output.is_terminal:
        output.width = max(output.width, 140)
    return output
