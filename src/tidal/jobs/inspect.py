"""Reading jobs back for people: lists, counts, failures (used by the CLI and later the UI)."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from tidal.tracking.job_runs import list_runs

_JOB_COLUMNS = ("id", "name", "status", "config_file", "created_at", "updated_at", "total_items")


def list_jobs(db: sqlite3.Connection, job_id: str | None = None) -> list[dict[str, Any]]:
    """Every job (or one) with its done and failed item counts, most recently updated first."""
    counts = _item_counts(db, job_id)
    where = " WHERE id = ?" if job_id else ""
    rows = db.execute(f"SELECT {', '.join(_JOB_COLUMNS)} FROM jobs{where} ORDER BY updated_at DESC",
                      (job_id,) if job_id else ())
    jobs = []
    for row in rows:
        job = dict(zip(_JOB_COLUMNS, row, strict=True))
        done, failed = counts.get(job["id"], (0, 0))
        jobs.append(job | {"done": done, "failed": failed})
    return jobs


def _item_counts(db: sqlite3.Connection, job_id: str | None) -> dict[str, tuple[int, int]]:
    """Counted from the ledger itself: one job's items only when asked for one."""
    where = " WHERE job_id = ?" if job_id else ""
    rows = db.execute(
        f"SELECT job_id, SUM(status = 'done'), SUM(status = 'failed') FROM items{where} GROUP BY job_id",
        (job_id,) if job_id else (),
    )
    return {job_id: (int(done or 0), int(failed or 0)) for job_id, done, failed in rows}


def job_detail(db: sqlite3.Connection, job_id: str, max_failures: int = 20) -> dict[str, Any] | None:
    """One job: its row, counts, partitions, runs and first failures; None when there is none."""
    found = list_jobs(db, job_id)
    if not found:
        return None
    job = found[0]
    (config,) = db.execute("SELECT config FROM jobs WHERE id = ?", (job_id,)).fetchone()
    partitions = dict(db.execute(
        "SELECT status, COUNT(*) FROM partitions WHERE job_id = ? GROUP BY status", (job_id,)
    ).fetchall())
    return job | {
        "config": json.loads(config),
        "partitions_done": partitions.get("done", 0),
        "partitions_failed": partitions.get("failed", 0),
        "runs": list_runs(db, job_id),
        "failures": failures(db, job_id, max_failures),
    }


def failures(db: sqlite3.Connection, job_id: str, limit: int) -> list[dict[str, str]]:
    """Failed partitions first (they hide more items), then failed items, with their errors."""
    partition_rows = db.execute(
        "SELECT id, error FROM partitions WHERE job_id = ? AND status = 'failed' ORDER BY id LIMIT ?",
        (job_id, limit),
    ).fetchall()
    item_rows = db.execute(
        "SELECT key, error FROM items WHERE job_id = ? AND status = 'failed' ORDER BY key LIMIT ?",
        (job_id, limit),
    ).fetchall()
    found = [{"kind": "partition", "key": k, "error": e or ""} for k, e in partition_rows]
    found += [{"kind": "item", "key": k, "error": e or ""} for k, e in item_rows]
    return found[:limit]
