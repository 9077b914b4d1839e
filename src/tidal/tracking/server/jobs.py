"""``GET /api/v1/jobs`` and ``/api/v1/jobs/{id}``: the ``tidal map`` jobs of the embedded store.

Kept apart from the other handlers because it reads the jobs ledger under ``jobs_home``
directly, not through the Store (that is to change: then this module reads the store too).

| method and path | what |
| --- | --- |
| ``GET /api/v1/jobs`` | ``{"jobs": [...]}`` with done and failed counts |
| ``GET /api/v1/jobs/{id}`` | one job: counts, partitions, runs, first failures |
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import TypeVar

from fastapi import APIRouter
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from tidal.errors import StoreError
from tidal.tracking.httpstore import API_PREFIX
from tidal.tracking.server.responses import json_response


def add_routes(api: APIRouter, jobs_home: Path | None) -> None:
    @api.get("/jobs", summary="tidal map jobs with done and failed counts")
    def jobs() -> Response:
        if not _has_jobs(jobs_home):
            return json_response({"jobs": []})
        from tidal.jobs.inspect import list_jobs

        return json_response({"jobs": _read_jobs(jobs_home, list_jobs)})

    @api.get("/jobs/{job_id}", summary="One job: counts, partitions, runs, first failures")
    def job(job_id: str) -> Response:
        if jobs_home is None:
            raise HTTPException(404, detail="this server shows no jobs: `tidal map` jobs live in the embedded "
                                            "store; run `tidal ui` (or `tidal server` without --store) where they ran")
        from tidal.jobs.inspect import job_detail

        found = _read_jobs(jobs_home, lambda db: job_detail(db, job_id)) if _has_jobs(jobs_home) else None
        if found is None:
            raise HTTPException(404, detail=f"no job {job_id!r}; GET {API_PREFIX}/jobs lists the jobs")
        return json_response(found)


def _has_jobs(jobs_home: Path | None) -> bool:
    from tidal.settings import DB_FILENAME

    return jobs_home is not None and (jobs_home / DB_FILENAME).exists()


_T = TypeVar("_T")


def _read_jobs(jobs_home: Path | None, read: Callable[[sqlite3.Connection], _T]) -> _T:
    from tidal.database import connect

    try:
        with closing(connect(jobs_home, create=False)) as db:
            return read(db)
    except sqlite3.Error as error:
        raise StoreError(f"cannot read the jobs in {jobs_home}: {error}") from error
