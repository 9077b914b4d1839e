"""Reading a job's results back from the store, as flat rows: item metadata then result fields."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from typing import Any

from tidal.errors import UsageError
from tidal.types import JobId


def iter_rows(db: sqlite3.Connection, job_id: JobId, include_failed: bool = False) -> Iterator[dict[str, Any]]:
    """Rows ordered by path and frame index (the same whatever the workers or interruptions)."""
    where = "" if include_failed else " AND status = 'done'"
    query = ("SELECT key, status, meta, result, error FROM items WHERE job_id = ?" + where +
             " ORDER BY path, frame_index, key")
    for key, status, meta, result, error in db.execute(query, (job_id,)):
        row: dict[str, Any] = {"key": key, **json.loads(meta or "{}")}
        if include_failed:
            row |= {"status": status, "error": error}
        row.update(json.loads(result or "{}"))
        yield row


def find_job(db: sqlite3.Connection, reference: str) -> JobId:
    """A job id from a full id or a unique prefix; the error lists what exists."""
    rows = db.execute("SELECT id FROM jobs WHERE id LIKE ? ORDER BY id", (reference + "%",)).fetchall()
    if len(rows) == 1:
        return str(rows[0][0])
    if not rows:
        raise UsageError(f"no job {reference!r} in this TIDAL_HOME; `tidal jobs ls` lists the jobs,"
                         " or pass the config file that defines the job")
    raise UsageError(f"{reference!r} matches {len(rows)} jobs; give more characters of the id")
