"""The jobs half of the SQL store: lists, details, failures and results of ``tidal map`` jobs.

Read with SQLAlchemy Core from the tables the ledgers write (``jobs``, ``partitions``,
``items``), so the embedded SQLite file and a team's PostgreSQL server answer the same.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.engine import Connection

from tidal.jobs.ledger import ItemStatus, PartitionStatus
from tidal.tracking import schema
from tidal.types import JobId

JOB_COLUMNS = ("id", "name", "status", "config_file", "created_at", "updated_at", "total_items")
RESULTS_CHUNK = 2_000  # rows fetched at a time while streaming results


def list_jobs(connection: Connection, prefix: str | None = None, limit: int = 500) -> list[dict[str, Any]]:
    """Jobs (those whose id starts with ``prefix``), most recently updated first, with item counts."""
    jobs = schema.jobs
    query = select(*(jobs.c[name] for name in JOB_COLUMNS)).order_by(jobs.c.updated_at.desc()).limit(limit)
    if prefix is not None:
        query = query.where(jobs.c.id.startswith(prefix, autoescape=True))
    found = [dict(row) for row in connection.execute(query).mappings()]
    counts = _item_counts(connection, [job["id"] for job in found])
    return [job | dict(zip(("done", "failed"), counts.get(job["id"], (0, 0)), strict=True)) for job in found]


def has_job(connection: Connection, job_id: JobId) -> bool:
    """One primary-key lookup (the server asks on every ledger request)."""
    return connection.execute(select(schema.jobs.c.id).where(schema.jobs.c.id == job_id)).first() is not None


def _item_counts(connection: Connection, job_ids: list[JobId]) -> dict[JobId, tuple[int, int]]:
    """Counted from the ledger itself, for the listed jobs only."""
    if not job_ids:
        return {}
    items = schema.items
    done = func.sum(case((items.c.status == ItemStatus.DONE.value, 1), else_=0))
    failed = func.sum(case((items.c.status == ItemStatus.FAILED.value, 1), else_=0))
    query = (select(items.c.job_id, done, failed).where(items.c.job_id.in_(job_ids))
             .group_by(items.c.job_id))
    return {job_id: (int(d or 0), int(f or 0)) for job_id, d, f in connection.execute(query)}


def job_detail(connection: Connection, job_id: JobId, max_failures: int) -> dict[str, Any] | None:
    """One job: its row, counts, config, partition counts and first failures; None when absent."""
    found = [job for job in list_jobs(connection, job_id, limit=2) if job["id"] == job_id]
    if not found:
        return None
    config = connection.execute(select(schema.jobs.c.config).where(schema.jobs.c.id == job_id)).scalar_one()
    partitions = schema.partitions
    by_status: dict[str, int] = dict(connection.execute(  # type: ignore[arg-type]
        select(partitions.c.status, func.count()).where(partitions.c.job_id == job_id)
        .group_by(partitions.c.status)).all())
    return found[0] | {
        "config": json.loads(config),
        "partitions_done": by_status.get(PartitionStatus.DONE.value, 0),
        "partitions_failed": by_status.get(PartitionStatus.FAILED.value, 0),
        "failures": failures(connection, job_id, max_failures),
    }


def failures(connection: Connection, job_id: JobId, limit: int) -> list[dict[str, str]]:
    """Failed partitions first (they hide more items), then failed items, with their errors."""
    partitions, items = schema.partitions, schema.items
    failed_partitions = connection.execute(
        select(partitions.c.id, partitions.c.error).where(
            partitions.c.job_id == job_id, partitions.c.status == PartitionStatus.FAILED.value)
        .order_by(partitions.c.id).limit(limit)).all()
    failed_items = connection.execute(
        select(items.c.key, items.c.error).where(items.c.job_id == job_id,
                                                 items.c.status == ItemStatus.FAILED.value)
        .order_by(items.c.key).limit(limit)).all()
    found = [{"kind": "partition", "key": key, "error": error or ""} for key, error in failed_partitions]
    found += [{"kind": "item", "key": key, "error": error or ""} for key, error in failed_items]
    return found[:limit]


def results(connection: Connection, job_id: JobId, include_failed: bool = False) -> Iterator[dict[str, Any]]:
    """Flat rows (key, the item's metadata, then the result's fields), streamed in chunks.

    Ordered by path, frame index and key, nulls first: the same whatever the workers, the
    interruptions or the database.
    """
    items = schema.items
    query = select(items.c.key, items.c.status, items.c.meta, items.c.result, items.c.error).where(
        items.c.job_id == job_id).order_by(items.c.path.nulls_first(), items.c.frame_index.nulls_first(),
                                           items.c.key)
    if not include_failed:
        query = query.where(items.c.status == ItemStatus.DONE.value)
    streamed = connection.execution_options(yield_per=RESULTS_CHUNK).execute(query)
    for key, status, meta, result, error in streamed:
        row: dict[str, Any] = {"key": key, **json.loads(meta or "{}")}
        if include_failed:
            row |= {"status": status, "error": error}
        row.update(json.loads(result or "{}"))
        yield row
