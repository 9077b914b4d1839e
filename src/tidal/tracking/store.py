"""The embedded store: one SQLite file under TIDAL_HOME holding jobs, ledgers and runs.

WAL mode lets readers (``tidal jobs show``, the dashboard) look while a job writes; with
``synchronous=NORMAL`` a power loss can drop the last transactions but never corrupts the file,
and a dropped transaction only means its batch is done again on resume.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tidal.errors import StoreError
from tidal.settings import DB_FILENAME, home

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    config TEXT NOT NULL,
    config_file TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    status TEXT NOT NULL,
    total_items INTEGER
);
CREATE TABLE IF NOT EXISTS partitions (
    job_id TEXT NOT NULL,
    id TEXT NOT NULL,
    status TEXT NOT NULL,
    items INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    PRIMARY KEY (job_id, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS items (
    job_id TEXT NOT NULL,
    partition_id TEXT NOT NULL,
    key TEXT NOT NULL,
    status TEXT NOT NULL,
    path TEXT,
    frame_index INTEGER,
    meta TEXT,
    result TEXT,
    error TEXT,
    -- the partition in the key: resume reads one partition's keys without a second index
    PRIMARY KEY (job_id, partition_id, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    job_id TEXT,
    status TEXT NOT NULL,
    config TEXT,
    argv TEXT,
    host TEXT,
    pid INTEGER,
    started_at REAL NOT NULL,
    ended_at REAL,
    stats TEXT
);
"""


def database_path(state_home: Path | None = None) -> Path:
    return (state_home or home()) / DB_FILENAME


def connect(state_home: Path | None = None, create: bool = True) -> sqlite3.Connection:
    """Open (and create) the store under ``state_home``; errors name the folder and the fix."""
    folder = state_home or home()
    path = folder / DB_FILENAME
    if not create and not path.exists():
        raise StoreError(f"no tidal state in {folder}: run `tidal map` first or set TIDAL_HOME")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(path, timeout=30.0, isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.executescript(SCHEMA)
    except (OSError, sqlite3.Error) as error:
        raise StoreError(
            f"cannot use {path} as tidal's state ({error}); make {folder} writable "
            "or point TIDAL_HOME at a writable folder"
        ) from error
    return connection
