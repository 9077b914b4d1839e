"""The SQL store: SQLAlchemy Core over SQLite (embedded) or PostgreSQL (teams).

It owns runs and jobs alike. A job's ledger on the embedded SQLite file is the plain-sqlite3 fast
path (:class:`~tidal.jobs.sqlite_ledger.SQLiteLedger`); on PostgreSQL it is
:class:`~tidal.jobs.sql_ledger.SQLLedger`. Job reads are in :mod:`tidal.tracking.sqljobs`.
"""

from __future__ import annotations

import json
import math
import socket
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from sqlalchemy import Float, and_, case, cast, delete, insert, literal, or_, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from tidal.children import alive
from tidal.database import Guarded
from tidal.errors import JobNotFound, RunExists, RunNotFound, UsageError
from tidal.status import RunStatus
from tidal.tracking import schema, sqljobs, sqlmetrics
from tidal.tracking.artifacts import ArtifactStore
from tidal.tracking.store import (
    LOST_AFTER_SECONDS,
    RUN_JSON_FIELDS,
    Archived,
    Batch,
    Condition,
    Store,
    check_status,
    parse_sort,
    parse_where,
)
from tidal.types import JobId

if TYPE_CHECKING:
    from tidal.jobs.ledger import Ledger


class SQLStore(Store):
    """Runs and what they log, in the tables of ``tidal.tracking.schema``."""

    def __init__(self, engine: Engine, artifacts: ArtifactStore) -> None:
        self.engine = engine
        self.artifact_store = artifacts

    def create_run(self, run: dict[str, Any]) -> None:
        try:
            with self._begin() as connection:
                connection.execute(insert(schema.runs).values(**_encode_run(run)))
        except IntegrityError:
            raise RunExists(f"run {run['id']!r} already exists; choose another id "
                            "(a client retrying its own create can ignore this)") from None

    def update_run(self, run_id: str, fields: dict[str, Any]) -> None:
        with self._begin() as connection:
            result = connection.execute(update(schema.runs).where(schema.runs.c.id == run_id)
                                        .values(**_encode_run(fields)))
            if result.rowcount == 0:
                raise RunNotFound(f"no run {run_id!r}; `tidal runs ls` lists the runs")

    def log_batch(self, run_id: str, batch: Batch) -> None:
        try:
            with self._begin() as connection:
                connection.execute(insert(schema.log_batches).values(
                    run_id=run_id, batch_id=batch.batch_id, received_at=time.time()))
                self._apply(connection, run_id, batch)
        except IntegrityError:
            return  # this batch was applied before (a retry): nothing to do

    def _apply(self, connection: Connection, run_id: str, batch: Batch) -> None:
        if batch.params:
            _upsert(connection, schema.params, run_id,
                    {key: json.dumps(value, default=str) for key, value in batch.params.items()})
        if batch.tags:
            _upsert(connection, schema.tags, run_id, {k: str(v) for k, v in batch.tags.items()})
        if batch.metrics:
            _insert_metrics(connection, run_id, batch.metrics)
        if batch.logs:
            connection.execute(insert(schema.logs), [
                {"run_id": run_id, "stream": stream, "text": text, "timestamp": stamp}
                for stream, text, stamp in batch.logs])
        if batch.images:
            connection.execute(insert(schema.images), [{"run_id": run_id, **image} for image in batch.images])
        if batch.heartbeat is not None:
            connection.execute(update(schema.runs).where(schema.runs.c.id == run_id)
                               .values(heartbeat_at=batch.heartbeat))

    def put_artifact(self, run_id: str, name: str, source: Path | bytes | BinaryIO,
                     max_bytes: int | None = None) -> dict[str, Any]:
        if isinstance(source, bytes):
            record = self.artifact_store.put_bytes(run_id, name, source)
        elif isinstance(source, Path):
            record = self.artifact_store.put_file(run_id, source, name)
        else:
            record = self.artifact_store.put_stream(run_id, name, source, max_bytes)
        values = {"name": record.name, "uri": record.uri, "size": record.size, "sha256": record.sha256,
                  "created_at": record.created_at}
        self._record_artifact(run_id, values)
        return values

    def open_artifact(self, run_id: str, name: str) -> BinaryIO:
        return self.artifact_store.open(run_id, name)

    def _record_artifact(self, run_id: str, values: dict[str, Any]) -> None:
        with self._begin() as connection:
            connection.execute(delete(schema.artifacts).where(and_(
                schema.artifacts.c.run_id == run_id, schema.artifacts.c.name == values["name"])))
            connection.execute(insert(schema.artifacts).values(run_id=run_id, **values))

    def get_run(self, run_id: str) -> dict[str, Any]:
        self.mark_lost()
        with self._connect() as connection:
            row = connection.execute(select(schema.runs).where(schema.runs.c.id == run_id)).mappings().first()
            if row is None:
                raise RunNotFound(f"no run {run_id!r}; `tidal runs ls` lists the runs")
            run = _decode_run(dict(row))
            run["params"] = {k: json.loads(v) for k, v in connection.execute(
                select(schema.params.c.key, schema.params.c.value).where(schema.params.c.run_id == run_id))}
            run["tags"] = self._tags(connection, [run_id]).get(run_id, {})
        return run

    def list_runs(self, project: str | None = None, status: str | None = None, tag: str | None = None,
                  search: str | None = None, limit: int = 500, job_id: str | None = None, *,
                  offset: int = 0, id_prefix: str | None = None, where: str | None = None,
                  sort: str | None = None, archived: Archived = "exclude") -> list[dict[str, Any]]:
        self.mark_lost()
        query = self._filtered(select(schema.runs), project, check_status(status), tag, search, job_id, id_prefix,
                               archived)
        for condition in parse_where(where) if where else []:
            query = query.where(self._condition(condition))
        query = self._ordered(query, sort).limit(limit).offset(offset)
        with self._connect() as connection:
            found = [_decode_run(dict(row)) for row in connection.execute(query).mappings()]
            tags = self._tags(connection, [run["id"] for run in found])
        return [run | {"tags": tags.get(run["id"], {})} for run in found]

    @staticmethod
    def _filtered(query: Any, project: str | None, status: str | None, tag: str | None, search: str | None,
                  job_id: str | None, id_prefix: str | None, archived: Archived) -> Any:
        runs = schema.runs
        if archived not in ("exclude", "only", "include"):
            raise UsageError(f"archived={archived!r}: use 'exclude', 'only' or 'include'")
        if archived != "include":
            hidden = runs.c.archived_at.is_(None) if archived == "exclude" else runs.c.archived_at.isnot(None)
            query = query.where(hidden)
        for column, value in ((runs.c.job_id, job_id), (runs.c.project, project), (runs.c.status, status)):
            if value:
                query = query.where(column == value)
        if id_prefix:
            query = query.where(runs.c.id.startswith(id_prefix, autoescape=True))
        if search:
            pattern = f"%{search}%"
            query = query.where(or_(runs.c.name.like(pattern), runs.c.id.like(pattern), runs.c.project.like(pattern)))
        if tag:
            query = query.where(runs.c.id.in_(_tag_filter(tag)))
        return query

    def _ordered(self, query: Any, sort: str | None) -> Any:
        runs = schema.runs
        if not sort:
            return query.order_by(runs.c.started_at.desc(), runs.c.id)
        order = parse_sort(sort)
        column = runs.c[order.name] if not order.scope else self._value_of(order.scope, order.name)
        if order.scope == "params":
            column = self._number(column)
        by = column.desc() if order.descending else column.asc()
        return query.order_by(by.nulls_last(), runs.c.started_at.desc(), runs.c.id)

    @staticmethod
    def _value_of(scope: str, name: str) -> Any:
        """A correlated subquery: the run's metric at its latest step, or its param (JSON text) or tag."""
        if scope == "metrics":
            table = schema.metrics
            return (select(table.c.value).where(table.c.run_id == schema.runs.c.id, table.c.key == name)
                    .order_by(table.c.step.desc().nulls_last(), table.c.id.desc()).limit(1).scalar_subquery())
        table = schema.params if scope == "params" else schema.tags
        return select(table.c.value).where(table.c.run_id == schema.runs.c.id, table.c.key == name).scalar_subquery()

    def _number(self, text: Any) -> Any:
        """Text as a number, NULL when it is not one (PostgreSQL refuses to cast 'adam')."""
        if self.engine.dialect.name == "sqlite":
            return case((text.op("GLOB")("*[0-9]*"), cast(text, Float)), else_=literal(None, Float))
        pattern = r"^\s*-?[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?\s*$"
        return case((text.op("~")(pattern), cast(text, Float)), else_=literal(None, Float))

    def _condition(self, condition: Condition) -> Any:
        value: Any = condition.value
        numeric = isinstance(value, float)
        if condition.scope == "":
            column: Any = schema.runs.c[condition.name]
            if numeric and condition.name not in ("started_at", "ended_at"):
                value = _plain(value)  # a text column compared with what was typed
        elif condition.scope == "metrics":
            if not numeric:
                raise UsageError(f"--where metrics.{condition.name} {condition.operator} {value!r}: a metric is a "
                                 "number; compare it with one")
            column = self._value_of("metrics", condition.name)
        elif numeric:
            column = self._number(self._value_of(condition.scope, condition.name))
        else:
            column = self._value_of(condition.scope, condition.name)
            value = json.dumps(value) if condition.scope == "params" else value  # params are JSON text
        return {"=": column == value, "!=": column != value, "<": column < value, "<=": column <= value,
                ">": column > value, ">=": column >= value}[condition.operator]

    def find_run(self, reference: str) -> str:
        with self._connect() as connection:
            if connection.execute(select(schema.runs.c.id).where(schema.runs.c.id == reference)).first():
                return reference
        return super().find_run(reference)

    def delete_run(self, run_id: str) -> None:
        with self._begin() as connection:
            for table in (schema.metrics, schema.logs, schema.images, schema.artifacts, schema.params,
                          schema.tags, schema.log_batches):
                connection.execute(delete(table).where(table.c.run_id == run_id))
            if connection.execute(delete(schema.runs).where(schema.runs.c.id == run_id)).rowcount == 0:
                raise RunNotFound(f"no run {run_id!r}; `tidal runs ls` lists the runs")
        self.artifact_store.delete_run(run_id)

    def _tags(self, connection: Connection, run_ids: list[str]) -> dict[str, dict[str, str]]:
        found: dict[str, dict[str, str]] = defaultdict(dict)
        if run_ids:
            rows = connection.execute(select(schema.tags).where(schema.tags.c.run_id.in_(run_ids)))
            for run_id, key, value in rows:
                found[run_id][key] = value
        return found

    def sampled_metrics(self, run_id: str, buckets: int = 1000, keys: list[str] | None = None,
                        start: float | None = None, end: float | None = None, axis: str | None = None,
                        after: int = 0) -> dict[str, Any]:
        with self._connect() as connection:
            return sqlmetrics.sample(connection, run_id, buckets, keys, start, end, axis, after)

    def metrics(self, run_id: str, keys: list[str] | None = None) -> dict[str, list[tuple[int | None, float, float]]]:
        table = schema.metrics
        query = select(table.c.key, table.c.step, table.c.value, table.c.timestamp).where(
            table.c.run_id == run_id).order_by(table.c.id)
        if keys:
            query = query.where(table.c.key.in_(keys))
        points: dict[str, list[tuple[int | None, float, float]]] = defaultdict(list)
        with self._connect() as connection:
            for key, step, value, stamp in connection.execute(query):
                points[key].append((step, math.nan if value is None else value, stamp))
        return dict(points)

    def logs(self, run_id: str, after: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
        table = schema.logs
        query = (select(table.c.id, table.c.stream, table.c.text, table.c.timestamp)
                 .where(table.c.run_id == run_id, table.c.id > after).order_by(table.c.id).limit(limit))
        with self._connect() as connection:
            return [dict(row) for row in connection.execute(query).mappings()]

    def images(self, run_id: str) -> list[dict[str, Any]]:
        table = schema.images
        query = select(table.c.key, table.c.step, table.c.artifact, table.c.width, table.c.height,
                       table.c.timestamp).where(table.c.run_id == run_id).order_by(table.c.id)
        with self._connect() as connection:
            return [dict(row) for row in connection.execute(query).mappings()]

    def artifacts(self, run_id: str) -> list[dict[str, Any]]:
        table = schema.artifacts
        query = select(table).where(table.c.run_id == run_id).order_by(table.c.name)
        with self._connect() as connection:
            return [dict(row) for row in connection.execute(query).mappings()]

    def projects(self) -> list[str]:
        with self._connect() as connection:
            query = select(schema.runs.c.project).distinct().order_by(schema.runs.c.project)
            return [project for (project,) in connection.execute(query)]

    def mark_lost(self, now: float | None = None) -> int:
        """Runs still 'running' whose process is gone (or silent too long) become 'lost'."""
        now = now or time.time()
        runs = schema.runs
        query = select(runs.c.id, runs.c.host, runs.c.pid, runs.c.heartbeat_at, runs.c.started_at).where(
            runs.c.status == RunStatus.RUNNING.value)
        with self._connect() as connection:
            candidates = list(connection.execute(query))
        lost = [(run_id, beat or started) for run_id, host, pid, beat, started in candidates
                if _is_lost(host, pid, beat or started, now)]
        if lost:
            with self._begin() as connection:
                for run_id, last_sign in lost:  # its duration ends at its last heartbeat, not when someone looked
                    connection.execute(update(runs).where(runs.c.id == run_id, runs.c.status == RunStatus.RUNNING.value)
                                       .values(status=RunStatus.LOST.value, ended_at=last_sign))
        return len(lost)

    # -- jobs ------------------------------------------------------------------------------------

    def ledger(self, job_id: JobId) -> Ledger:
        if self.engine.dialect.name == "sqlite" and self.engine.url.database not in (None, "", ":memory:"):
            from tidal.database import connect_file
            from tidal.jobs.sqlite_ledger import SQLiteLedger

            return SQLiteLedger(connect_file(Path(self.engine.url.database)), job_id)
        from tidal.jobs.sql_ledger import SQLLedger

        return SQLLedger(self.engine, job_id)

    def list_jobs(self, prefix: str | None = None, limit: int = 500) -> list[dict[str, Any]]:
        with self._connect() as connection:
            return sqljobs.list_jobs(connection, prefix, limit)

    def get_job(self, job_id: JobId, max_failures: int = 20) -> dict[str, Any]:
        with self._connect() as connection:
            detail = sqljobs.job_detail(connection, job_id, max_failures)
        if detail is None:
            raise self._no_job(job_id)
        return detail | {"runs": self.list_runs(job_id=job_id)}

    def has_job(self, job_id: JobId) -> bool:
        with self._connect() as connection:
            return sqljobs.has_job(connection, job_id)

    def results(self, job_id: JobId, include_failed: bool = False) -> Iterator[dict[str, Any]]:
        if not self.has_job(job_id):
            raise self._no_job(job_id)
        return self._stream_results(job_id, include_failed)

    def _stream_results(self, job_id: JobId, include_failed: bool) -> Iterator[dict[str, Any]]:
        with self._connect() as connection:
            yield from sqljobs.results(connection, job_id, include_failed)

    def _no_job(self, job_id: JobId) -> JobNotFound:
        return JobNotFound(f"no job {job_id!r} in {self.describe()}; `tidal jobs ls` lists the jobs")

    def describe(self) -> str:
        return f"the store {self.engine.url.render_as_string(hide_password=True)}"

    def close(self) -> None:
        self.engine.dispose()

    def _begin(self) -> Any:
        return Guarded(self.engine, begin=True, expect_conflicts=True)

    def _connect(self) -> Any:
        return Guarded(self.engine, begin=False, expect_conflicts=True)

    # -- the queue (tidal.remote) ------------------------------------------------------------------

    def enqueue(self, entry: dict[str, Any]) -> None:
        try:
            with self._begin() as connection:
                connection.execute(insert(schema.queue).values(**_encode_entry(entry)))
        except IntegrityError:
            raise RunExists(f"run {entry['run_id']!r} is queued already; `tidal queue ls` shows it") from None

    def queue_entries(self, statuses: list[str] | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        table = schema.queue
        query = select(table).order_by(table.c.priority.desc(), table.c.created_at, table.c.run_id).limit(limit)
        if statuses is not None:
            query = query.where(table.c.status.in_(statuses))
        with self._connect() as connection:
            return [_decode_entry(dict(row)) for row in connection.execute(query).mappings()]

    def queue_entry(self, run_id: str) -> dict[str, Any]:
        with self._connect() as connection:
            row = connection.execute(select(schema.queue).where(schema.queue.c.run_id == run_id)).mappings().first()
        if row is None:
            raise RunNotFound(f"run {run_id!r} was never submitted to Ray; `tidal queue ls` lists submitted runs")
        return _decode_entry(dict(row))

    def update_queue_entry(self, run_id: str, fields: dict[str, Any], only_if: list[str] | None = None) -> bool:
        table = schema.queue
        statement = update(table).where(table.c.run_id == run_id).values(**_encode_entry(fields))
        if only_if is not None:
            statement = statement.where(table.c.status.in_(only_if))
        with self._begin() as connection:
            changed = connection.execute(statement).rowcount > 0
        if not changed:
            self.queue_entry(run_id)  # RunNotFound when there is no entry at all
        return changed


def _is_lost(host: str | None, pid: int | None, last_sign: float, now: float) -> bool:
    if host == socket.gethostname() and pid and not alive(pid):
        return True
    return now - last_sign > LOST_AFTER_SECONDS


_METRIC_COLUMNS = "run_id, key, step, value, timestamp"


def _insert_metrics(connection: Connection, run_id: str,
                    metrics: list[tuple[str, int | None, float, float]]) -> None:
    """The hot path of tracking (a million points a run is common): plain DBAPI calls, not
    SQLAlchemy's per-row dicts — COPY on PostgreSQL, one executemany on SQLite (several times faster
    either way: bench/tracking.py). NaN is stored as NULL (SQLite has no NaN)."""
    rows = [(run_id, key, step, None if math.isnan(value) else value, stamp) for key, step, value, stamp in metrics]
    if connection.dialect.name == "postgresql":
        raw = connection.connection.dbapi_connection
        with raw.cursor() as cursor, cursor.copy(f"COPY metrics ({_METRIC_COLUMNS}) FROM STDIN") as copy:  # type: ignore[union-attr]
            for row in rows:
                copy.write_row(row)
        return
    connection.exec_driver_sql(f"INSERT INTO metrics ({_METRIC_COLUMNS}) VALUES (?, ?, ?, ?, ?)", rows)


def _upsert(connection: Connection, table: Any, run_id: str, values: dict[str, Any]) -> None:
    connection.execute(delete(table).where(table.c.run_id == run_id, table.c.key.in_(list(values))))
    connection.execute(insert(table), [{"run_id": run_id, "key": k, "value": v} for k, v in values.items()])


def _plain(value: float) -> str:
    """A number as a tag or column holds it as text: 3.0 → "3"."""
    return str(int(value)) if value.is_integer() else repr(value)


def _tag_filter(tag: str) -> Any:
    key, _, value = tag.partition("=")
    query = select(schema.tags.c.run_id).where(schema.tags.c.key == key)
    return query.where(schema.tags.c.value == value) if value else query


def _encode_run(run: dict[str, Any]) -> dict[str, Any]:
    return {key: json.dumps(value, default=str) if key in RUN_JSON_FIELDS and value is not None else value
            for key, value in run.items()}


def _decode_run(row: dict[str, Any]) -> dict[str, Any]:
    return {key: json.loads(value) if key in RUN_JSON_FIELDS and value else value
            for key, value in row.items()}


def _encode_entry(entry: dict[str, Any]) -> dict[str, Any]:
    return {key: json.dumps(value, default=str) if key == "spec" else value for key, value in entry.items()}


def _decode_entry(row: dict[str, Any]) -> dict[str, Any]:
    return row | {"spec": json.loads(row["spec"]) if row.get("spec") else {}}

