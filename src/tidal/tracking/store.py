"""The Store plug-in point: where runs and everything they log are kept.

Implementations: :class:`~tidal.tracking.sqlstore.SQLStore` (SQLAlchemy over the embedded SQLite
file or a PostgreSQL server) and ``HTTPStore`` (a tidal server, when ``TIDAL_TRACKING_URI`` is an
http(s) URL). All pass ``tests/tracking/store_suite.py`` (runs) and ``tests/jobs/ledger_suite.py``
(jobs). :func:`tidal.tracking.stores.open_store` opens the one a URI names.

Runs are plain dicts with the columns of ``tidal.tracking.schema.runs``; JSON columns (config,
git, environment, stats, argv) are decoded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal

from tidal.errors import JobNotFound, RunNotFound, UsageError
from tidal.status import RunStatus
from tidal.types import JobId

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tidal.jobs.ledger import Ledger

LOST_AFTER_SECONDS = 90.0  # a running run whose heartbeat is older than this is lost
RUN_JSON_FIELDS = ("config", "git", "environment", "stats", "argv")
# the columns of a run that --where and --sort may name, beside metrics.KEY, params.KEY, tags.KEY
RUN_FIELDS = ("id", "name", "project", "kind", "status", "host", "job_id", "started_at", "ended_at")
FIELD_PREFIXES = ("metrics", "params", "tags")
OPERATORS = ("<=", ">=", "!=", "==", "=", "<", ">")
Archived = Literal["exclude", "only", "include"]
MetricPoints = dict[str, list[tuple[int | None, float, float]]]


@dataclass
class Batch:
    """What a run logged since the last flush, written in one transaction.

    ``batch_id`` makes a retried batch idempotent. Metrics are ``(key, step, value, timestamp)``,
    logs ``(stream, text, timestamp)``, images dicts with key, step, artifact, width, height and
    timestamp.
    """

    batch_id: str
    params: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: list[tuple[str, int | None, float, float]] = field(default_factory=list)
    logs: list[tuple[str, str, float]] = field(default_factory=list)
    images: list[dict[str, Any]] = field(default_factory=list)
    heartbeat: float | None = None

    def is_empty(self) -> bool:
        return not (self.params or self.tags or self.metrics or self.logs or self.images)


@dataclass(frozen=True)
class Condition:
    """One comparison of ``--where``: ``metrics.acc > 0.9``, ``params.optimizer = 'adam'``, ``status = failed``.

    ``scope`` is "metrics", "params", "tags" or "" (a run column); a metric is compared by its
    value at the latest step.
    """

    scope: str
    name: str
    operator: str
    value: str | float


@dataclass(frozen=True)
class Sort:
    """``--sort``: a run column, or ``metrics.KEY`` / ``params.KEY``; ``-`` in front or ``desc`` after: descending."""

    scope: str
    name: str
    descending: bool


_CONDITION = re.compile(r"^\s*(?P<field>[^\s<>=!]+)\s*(?P<operator><=|>=|!=|==|=|<|>)\s*(?P<value>.*?)\s*$")


def parse_where(text: str) -> list[Condition]:
    """Conditions joined by ``and``: ``"metrics.acc > 0.9 and tags.team = vision"``.

    A quoted value is text; otherwise a number when it reads as one.
    """
    conditions = []
    for part in re.split(r"\s+and\s+", text.strip(), flags=re.IGNORECASE):
        match = _CONDITION.match(part)
        if not match or not match["value"]:
            raise UsageError(f"cannot read the condition {part!r} in --where {text!r}: write FIELD OPERATOR "
                             f"VALUE, like metrics.acc > 0.9 or params.optimizer = 'adam' (operators: "
                             f"{' '.join(OPERATORS)}; join conditions with 'and')")
        scope, name = _field(match["field"], "--where")
        operator = "=" if match["operator"] == "==" else match["operator"]
        conditions.append(Condition(scope, name, operator, _literal(match["value"])))
    return conditions


def parse_sort(text: str) -> Sort:
    """``"metrics.acc"``, ``"-metrics.acc"``, ``"started_at desc"``."""
    words = text.strip().split()
    descending = bool(words) and words[-1].lower() == "desc"
    if words and words[-1].lower() in ("asc", "desc"):
        words = words[:-1]
    field_name = " ".join(words)
    if field_name.startswith("-"):
        field_name, descending = field_name[1:], True
    scope, name = _field(field_name, "--sort")
    if scope == "tags":
        raise UsageError(f"--sort {text!r}: tags are text without order; sort by a column, metrics.KEY or params.KEY")
    return Sort(scope, name, descending)


def _field(text: str, option: str) -> tuple[str, str]:
    scope, dot, name = text.partition(".")
    if dot and scope in FIELD_PREFIXES and name:
        return scope, name
    if not dot and text in RUN_FIELDS:
        return "", text
    raise UsageError(f"{option}: unknown field {text!r}; use metrics.KEY, params.KEY, tags.KEY or one of "
                     f"{', '.join(RUN_FIELDS)}")


def _literal(text: str) -> str | float:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    try:
        return float(text)
    except ValueError:
        return text


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """A nested config as dotted keys, the way runs are compared (lists stay values):
    ``{"model": {"lr": 1}}`` → ``{"model.lr": 1}``."""
    if not isinstance(value, dict) or (prefix and not value):
        return {prefix: value} if prefix else {}
    flat: dict[str, Any] = {}
    for key, inner in value.items():
        flat |= flatten(inner, f"{prefix}.{key}" if prefix else str(key))
    return flat


def check_status(status: str | None) -> str | None:
    """``status`` when it is a run status; otherwise a UsageError naming the valid ones."""
    if status is not None and status not in {s.value for s in RunStatus}:
        raise UsageError(f"unknown run status {status!r}; use one of: {', '.join(s.value for s in RunStatus)}")
    return status


class Store:
    """Base class of stores. Every method raises NotImplementedError here."""

    def create_run(self, run: dict[str, Any]) -> None:
        """Insert a new run (id, project, name, kind, status, started_at, ...)."""
        raise NotImplementedError

    def update_run(self, run_id: str, fields: dict[str, Any]) -> None:
        """Change a run's columns (status, ended_at, error, stats, heartbeat_at...)."""
        raise NotImplementedError

    def log_batch(self, run_id: str, batch: Batch) -> None:
        """Apply a batch once, in one transaction (a repeated ``batch_id`` is ignored)."""
        raise NotImplementedError

    def put_artifact(self, run_id: str, name: str, source: Path | bytes | BinaryIO,
                     max_bytes: int | None = None) -> dict[str, Any]:
        """Store a file, bytes or a stream as artifact ``name`` of the run (streamed, hashed)
        and record it; returns name, uri, size, sha256, created_at."""
        raise NotImplementedError

    def open_artifact(self, run_id: str, name: str) -> BinaryIO:
        """A streamed reader of one artifact; ArtifactNotFound when there is none."""
        raise NotImplementedError

    def get_run(self, run_id: str) -> dict[str, Any]:
        """One run with its params and tags; RunNotFound when there is none."""
        raise NotImplementedError

    def list_runs(self, project: str | None = None, status: str | None = None, tag: str | None = None,
                  search: str | None = None, limit: int = 500, job_id: str | None = None, *,
                  offset: int = 0, id_prefix: str | None = None, where: str | None = None,
                  sort: str | None = None, archived: Archived = "exclude") -> list[dict[str, Any]]:
        """Runs, newest first (or by ``sort``, see :func:`parse_sort`), filtered by project, status, tag
        (key or key=value), text, job, id prefix and ``where`` (see :func:`parse_where`); archived
        runs only when ``archived`` is "include" or "only". ``offset`` and ``limit`` page through them.

        Example::

            store.list_runs(project="det", where="metrics.acc > 0.9", sort="-metrics.acc", limit=20)
        """
        raise NotImplementedError

    def find_run(self, reference: str) -> str:
        """A run id from a full id or a unique prefix of one (the dashboard shows 8 characters)."""
        found = [str(run["id"]) for run in self.list_runs(id_prefix=reference, limit=20, archived="include")] \
            if reference else []
        if reference in found:
            return reference
        if len(found) == 1:
            return found[0]
        if not found:
            raise RunNotFound(f"no run {reference!r} in {self.describe()}; `tidal runs ls` lists the runs")
        raise UsageError(f"{reference!r} matches {len(found)} runs ({', '.join(found[:5])}); "
                         "give more characters of the id")

    def delete_run(self, run_id: str) -> None:
        """Delete a run with everything it logged, its artifacts included; RunNotFound when absent."""
        raise NotImplementedError

    def metrics(self, run_id: str, keys: list[str] | None = None) -> MetricPoints:
        """Each metric's points ``(step, value, timestamp)`` in logging order."""
        raise NotImplementedError

    def sampled_metrics(self, run_id: str, buckets: int = 1000, keys: list[str] | None = None,
                        start: float | None = None, end: float | None = None, axis: str | None = None,
                        after: int = 0) -> dict[str, Any]:
        """Metric series small enough to draw ``buckets`` pixels wide, whatever their length.

        A series of more than ``2 * buckets`` points is cut into ``buckets`` equal spans of its x
        axis (the step; the timestamp when some points have no step, or ``axis="time"``); each span
        keeps its minimum and maximum (and a NaN if it had one), so spikes survive. ``start`` and
        ``end`` limit the axis (a zoom: fewer points, so full resolution sooner); ``after`` keeps
        only points logged after that cursor (a live page's poll). Returns ``{"metrics": {key:
        [(step, value, timestamp)]}, "sampled": [keys cut down], "last": cursor}``: pass ``last``
        as ``after`` next time.
        """
        raise NotImplementedError

    def logs(self, run_id: str, after: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
        """Console output chunks with ``id`` greater than ``after`` (for a live tail)."""
        raise NotImplementedError

    def images(self, run_id: str) -> list[dict[str, Any]]:
        """Logged images: key, step, artifact name, size."""
        raise NotImplementedError

    def artifacts(self, run_id: str) -> list[dict[str, Any]]:
        """Artifacts: name, uri, size, sha256, created_at."""
        raise NotImplementedError

    def projects(self) -> list[str]:
        """Projects that have runs, sorted."""
        raise NotImplementedError

    # -- jobs: what ``tidal map`` ran, with its ledger and results -------------------------------

    def ledger(self, job_id: JobId) -> Ledger:
        """The ledger of one job, to record its results (see ``tidal.jobs.ledger``)."""
        raise NotImplementedError

    def list_jobs(self, prefix: str | None = None, limit: int = 500) -> list[dict[str, Any]]:
        """Jobs whose id starts with ``prefix`` (all by default), most recently updated first: id,
        name, status, config_file, created_at, updated_at, total_items, done, failed."""
        raise NotImplementedError

    def get_job(self, job_id: JobId, max_failures: int = 20) -> dict[str, Any]:
        """One job as in :meth:`list_jobs` plus its config, partition counts, runs and first
        failures (failed partitions, then items, with their errors); JobNotFound when absent."""
        raise NotImplementedError

    def has_job(self, job_id: JobId) -> bool:
        """Whether the job is registered (a cheap check, unlike :meth:`get_job`)."""
        return any(job["id"] == job_id for job in self.list_jobs(prefix=job_id, limit=2))

    def results(self, job_id: JobId, include_failed: bool = False) -> Iterator[dict[str, Any]]:
        """A job's rows, streamed: key, item metadata, then the result's fields (with status and
        error when ``include_failed``), ordered by path, frame index and key."""
        raise NotImplementedError

    def find_job(self, reference: str) -> JobId:
        """A job id from a full id or a unique prefix of one; the error says what to do."""
        found = [str(job["id"]) for job in self.list_jobs(prefix=reference, limit=20)] if reference else []
        if reference in found:
            return reference
        if len(found) == 1:
            return found[0]
        if not found:
            raise JobNotFound(f"no job {reference!r} in {self.describe()}; `tidal jobs ls` lists the jobs,"
                              " or pass the config file that defines the job")
        raise UsageError(f"{reference!r} matches {len(found)} jobs; give more characters of the id")

    def describe(self) -> str:
        """Where this store keeps things, for messages ("the store at ...")."""
        return f"the store {self!r}"

    def close(self) -> None:
        """Release connections."""

    # -- the queue: runs submitted to Ray (``tidal submit``; tidal.remote) ------------------------
    # Entries are dicts with the columns of ``tidal.tracking.schema.queue``, ``spec`` decoded.

    def enqueue(self, entry: dict[str, Any]) -> None:
        """Add a submitted run to the queue (run_id, priority, status, address, spec, created_at...);
        RunExists when it is queued already."""
        raise NotImplementedError

    def queue_entries(self, statuses: list[str] | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """Queue entries with these statuses (all by default): the highest priority first, then the oldest."""
        raise NotImplementedError

    def queue_entry(self, run_id: str) -> dict[str, Any]:
        """One entry; RunNotFound when the run was never submitted to Ray."""
        raise NotImplementedError

    def update_queue_entry(self, run_id: str, fields: dict[str, Any], only_if: list[str] | None = None) -> bool:
        """Change an entry's columns, only while its status is one of ``only_if`` (any status when None):
        a compare-and-set, so a cancel and a dispatch racing for one waiting run cannot both win.
        True when changed; RunNotFound when there is no such entry."""
        raise NotImplementedError
