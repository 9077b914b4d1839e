"""Reading a job's results back in tests: through the store, exactly as `tidal results export` does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tidal.database import sqlite_url
from tidal.tracking.stores import open_store


def job_rows(home: Path, job_id: str, include_failed: bool = False) -> list[dict[str, Any]]:
    """Every row of a job in the embedded store of ``home``."""
    store = open_store(sqlite_url(home), home=home)
    try:
        return list(store.results(job_id, include_failed))
    finally:
        store.close()
