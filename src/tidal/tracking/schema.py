"""The store's tables, in one SQLAlchemy MetaData: jobs and their ledgers, runs and what they log.

Migrations (``tidal/migrations``) create and change them; this module is what the code reads
and writes through. Timestamps are Unix seconds (float); JSON documents are stored as text so
SQLite and PostgreSQL behave the same.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, Index, Integer, MetaData, String, Table, Text

metadata = MetaData()

jobs = Table(
    "jobs", metadata,
    Column("id", String(32), primary_key=True),
    Column("name", Text, nullable=False),
    Column("config", Text, nullable=False),
    Column("config_file", Text),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("status", String(16), nullable=False),
    Column("total_items", BigInteger),
)

partitions = Table(
    "partitions", metadata,
    Column("job_id", String(32), primary_key=True),
    Column("id", Text, primary_key=True),
    Column("status", String(16), nullable=False),
    Column("items", Integer, nullable=False, server_default="0"),
    Column("failed", Integer, nullable=False, server_default="0"),
    Column("error", Text),
    sqlite_with_rowid=False,
)

items = Table(
    "items", metadata,
    # the partition in the key: a resume reads one partition's keys without a second index
    Column("job_id", String(32), primary_key=True),
    Column("partition_id", Text, primary_key=True),
    Column("key", Text, primary_key=True),
    Column("status", String(16), nullable=False),
    Column("path", Text),
    Column("frame_index", Integer),
    Column("meta", Text),
    Column("result", Text),
    Column("error", Text),
    sqlite_with_rowid=False,
)

runs = Table(
    "runs", metadata,
    Column("id", String(32), primary_key=True),
    Column("project", String(200), nullable=False, server_default="default"),
    Column("name", Text, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("parent_id", String(32)),
    Column("job_id", String(32)),
    Column("status", String(16), nullable=False),
    Column("config", Text),
    Column("argv", Text),
    Column("git", Text),
    Column("environment", Text),
    Column("host", Text),
    Column("pid", Integer),
    Column("started_at", Float, nullable=False),
    Column("ended_at", Float),
    Column("heartbeat_at", Float),
    Column("error", Text),
    Column("stats", Text),
    Column("archived_at", Float),  # hidden from lists unless asked for; None: not archived
    Column("notes", Text),
    Index("runs_project_started", "project", "started_at"),
    Index("runs_job", "job_id"),
)

params = Table(
    "params", metadata,
    Column("run_id", String(32), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Text),
)

tags = Table(
    "tags", metadata,
    Column("run_id", String(32), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False, server_default=""),
)

metrics = Table(
    "metrics", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(32), nullable=False),
    Column("key", String(250), nullable=False),
    Column("step", BigInteger),
    Column("value", Float),  # NaN is stored as NULL (SQLite has no NaN); +-inf as they are
    Column("timestamp", Float, nullable=False),
    # value and timestamp too: a chart's sample of a long series reads the index alone (migration 0003)
    Index("metrics_run_key", "run_id", "key", "step", "value", "timestamp"),
)

logs = Table(
    "logs", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(32), nullable=False),
    Column("stream", String(8), nullable=False),
    Column("text", Text, nullable=False),
    Column("timestamp", Float, nullable=False),
    Index("logs_run", "run_id", "id"),
)

images = Table(
    "images", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(32), nullable=False),
    Column("key", String(250), nullable=False),
    Column("step", BigInteger),
    Column("artifact", Text, nullable=False),
    Column("width", Integer),
    Column("height", Integer),
    Column("timestamp", Float, nullable=False),
    Index("images_run", "run_id", "key", "step"),
)

artifacts = Table(
    "artifacts", metadata,
    Column("run_id", String(32), primary_key=True),
    Column("name", String(512), primary_key=True),
    Column("uri", Text, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
)

log_batches = Table(
    "log_batches", metadata,
    # a client retrying a batch after a network error sends the same id: it is applied once
    Column("run_id", String(32), primary_key=True),
    Column("batch_id", String(64), primary_key=True),
    Column("received_at", Float, nullable=False),
)

queue = Table(
    "queue", metadata,
    # runs submitted to Ray (tidal submit): waiting for resources, or watched while Ray runs them
    Column("run_id", String(32), primary_key=True),
    Column("priority", Integer, nullable=False, server_default="0"),  # higher first
    Column("status", String(16), nullable=False),  # tidal.status.QueueStatus
    Column("address", Text, nullable=False),  # the Ray dashboard (Jobs API) it goes to
    Column("spec", Text, nullable=False),  # JSON: tidal.remote.spec.RemoteSpec
    Column("reason", Text),  # why it waits, or why Ray refused it
    Column("ray_job_id", String(128)),
    Column("created_at", Float, nullable=False),
    Column("submitted_at", Float),
    Column("ended_at", Float),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Index("queue_status_priority", "status", "priority", "created_at"),
)
