"""Run records: every execution (a ``tidal map`` today; scripts and services later) is a run."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import sys
import time
import uuid
from typing import Any

from tidal.tracking.store import RunStatus


class RunRecord:
    """Writes one run's row: config, status, start and end, counts and throughput."""

    def __init__(self, db: sqlite3.Connection, kind: str, name: str, job_id: str | None,
                 config: dict[str, Any]) -> None:
        self.db = db
        self.id = uuid.uuid4().hex[:12]
        self.started_at = time.time()
        db.execute(
            "INSERT INTO runs (id, kind, name, job_id, status, config, argv, host, pid, started_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (self.id, kind, name, job_id, RunStatus.RUNNING.value, json.dumps(config),
             json.dumps(sys.argv), socket.gethostname(), os.getpid(), self.started_at),
        )

    def update(self, stats: dict[str, Any]) -> None:
        """Store live statistics (progress) while the run goes on."""
        self.db.execute("UPDATE runs SET stats = ? WHERE id = ?", (json.dumps(stats), self.id))

    def finish(self, status: RunStatus, stats: dict[str, Any]) -> None:
        self.db.execute(
            "UPDATE runs SET status = ?, ended_at = ?, stats = ? WHERE id = ?",
            (status.value, time.time(), json.dumps(stats), self.id),
        )


def list_runs(db: sqlite3.Connection, job_id: str | None = None) -> list[dict[str, Any]]:
    """Runs, newest first, optionally those of one job."""
    query = "SELECT id, kind, name, job_id, status, started_at, ended_at, stats FROM runs"
    rows = db.execute(query + (" WHERE job_id = ?" if job_id else "") + " ORDER BY started_at DESC",
                      (job_id,) if job_id else ())
    names = ("id", "kind", "name", "job_id", "status", "started_at", "ended_at", "stats")
    return [dict(zip(names, row, strict=True)) | {"stats": json.loads(row[7] or "{}")} for row in rows]
