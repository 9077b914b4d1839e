"""The run record of a ``tidal map``: written on the ledger's own SQLite connection.

A job is a run like any other (kind ``job``) in the same ``runs`` table the Run API and the
dashboard use; it is written here rather than through the background writer of
:mod:`tidal.tracking.run` because the job's single writer already holds a connection and
commits at its own pace. Live progress (``stats``) and the heartbeat are updated every few
seconds, so a dashboard shows the job moving and a killed job becomes ``lost``.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import sys
import threading
import time
import uuid
from typing import Any

from tidal.tracking.capture import environment, git_state
from tidal.tracking.store import RunStatus


class RunRecord:
    """Writes one run's row: config, status, start and end, counts and throughput.

    Git state and the environment (a tenth of a second to collect) are gathered in a thread so
    the job's start does not wait for them; they are written with the next update.
    """

    def __init__(self, db: sqlite3.Connection, kind: str, name: str, job_id: str | None,
                 config: dict[str, Any]) -> None:
        self.db = db
        self.id = uuid.uuid4().hex[:12]
        self.started_at = time.time()
        self.captured: dict[str, Any] = {}
        self.capture = threading.Thread(target=self._capture, name="tidal-capture", daemon=True)
        self.capture.start()
        db.execute(
            "INSERT INTO runs (id, project, kind, name, job_id, status, config, argv, host, pid, started_at,"
            " heartbeat_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (self.id, "jobs", kind, name, job_id, RunStatus.RUNNING.value, json.dumps(config),
             json.dumps(sys.argv), socket.gethostname(), os.getpid(), self.started_at, self.started_at),
        )

    def _capture(self) -> None:
        self.captured = {"git": json.dumps(git_state()), "environment": json.dumps(environment())}

    def _write_capture(self) -> None:
        if self.captured:
            self.db.execute("UPDATE runs SET git = ?, environment = ? WHERE id = ?",
                            (self.captured["git"], self.captured["environment"], self.id))
            self.captured = {}

    def update(self, stats: dict[str, Any]) -> None:
        """Store live statistics (progress) and the heartbeat while the run goes on."""
        self._write_capture()
        self.db.execute("UPDATE runs SET stats = ?, heartbeat_at = ? WHERE id = ?",
                        (json.dumps(stats), time.time(), self.id))

    def finish(self, status: RunStatus, stats: dict[str, Any]) -> None:
        self.capture.join(timeout=30)
        self._write_capture()
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
