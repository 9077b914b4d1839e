"""Metric series cut down in SQL for a chart: the SQL store's half of ``Store.sampled_metrics``.

A 1M-point run must not travel to a browser whole (34 MB of page, seconds to draw): the database
groups each series into equal spans of its x axis and returns, per span, the count, the first and
last x, the minimum, maximum and mean, and how many values were NaN. Each span becomes at most
three points: a NaN marker when it had one, then its minimum and maximum in the order the trend
runs (a falling loss draws max then min), so a spike is never averaged away. Spans are integer
divisions of integer x values (steps; timestamps in milliseconds), which SQLite and PostgreSQL
compute the same way and which cannot overflow. Nothing reads a whole series but the sampling
itself: keys, counts and step ranges are a few index lookups each, and a live page's poll reads
only the rows after its cursor.

Example::

    with engine.connect() as connection:
        sample(connection, run_id, buckets=600)   # {"metrics": {...}, "sampled": [...], "last": 1234}
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, and_, cast, func, select, text
from sqlalchemy.engine import Connection

from tidal.errors import UsageError
from tidal.tracking import schema

MAX_BUCKETS = 10_000
_COUNT_CAP = 2 * MAX_BUCKETS + 1  # a series is counted up to here: enough to know whether to cut it
Point = tuple[int | None, float, float]


@dataclass
class Series:
    """What one key's points look like before they are read: their count and x range."""

    run_id: str
    key: str
    count: int
    with_step: int
    low_step: int | None
    high_step: int | None
    last_id: int

    def by_step(self, axis: str | None) -> bool:
        return axis != "time" and (axis == "step" or self.with_step == self.count)


def sample(connection: Connection, run_id: str, buckets: int, keys: list[str] | None = None,
           start: float | None = None, end: float | None = None, axis: str | None = None,
           after: int = 0) -> dict[str, Any]:
    """Every key's series (or those of ``keys``) at most about ``2 * buckets`` points long."""
    if not 1 <= buckets <= MAX_BUCKETS:
        raise UsageError(f"buckets={buckets}: ask for 1 to {MAX_BUCKETS} (about the chart's width in pixels)")
    if axis not in (None, "step", "time"):
        raise UsageError(f"axis={axis!r}: use 'step' or 'time'")
    metrics: dict[str, list[Point]] = {}
    sampled: list[str] = []
    # the cursor before reading: a point logged meanwhile may come again with the next poll, never be missed
    last = after or connection.execute(select(func.max(schema.metrics.c.id))).scalar() or 0
    for series in _describe(connection, run_id, keys, start, end, axis, after):
        last = max(last, series.last_id)
        where = _where(run_id, series, start, end, axis, after)
        if series.count <= 2 * buckets:
            metrics[series.key] = _raw(connection, where, series.by_step(axis))
        else:
            per_bucket = connection.dialect.name == "sqlite" and not after
            metrics[series.key] = _sampled(connection, where, series, buckets, axis, per_bucket)
            sampled.append(series.key)
    return {"metrics": metrics, "sampled": sampled, "last": last}


def _describe(connection: Connection, run_id: str, keys: list[str] | None, start: float | None,
              end: float | None, axis: str | None, after: int) -> list[Series]:
    if after:
        return _new_since(connection, run_id, keys, after)
    table = schema.metrics
    found = []
    for key in keys or _keys(connection, run_id):
        where = and_(table.c.run_id == run_id, table.c.key == key)
        with_step = connection.execute(select(table.c.id).where(where, table.c.step.is_(None)).limit(1)).first() is None
        if start is not None or end is not None:  # a zoom: only the range, on the axis the series is drawn on
            where = and_(where, _in_range(axis == "step" or (axis is None and with_step), start, end))
        # each of these reads a few entries of the index (run_id, key, step), never the whole series
        count = connection.execute(select(func.count()).select_from(
            select(table.c.id).where(where).limit(_COUNT_CAP).subquery())).scalar_one()
        if count:
            low = connection.execute(select(func.min(table.c.step)).where(where)).scalar()
            high = connection.execute(select(func.max(table.c.step)).where(where)).scalar()
            found.append(Series(run_id, key, count, count if with_step else 0, low, high, 0))
    return found


def _keys(connection: Connection, run_id: str) -> list[str]:
    """The run's metric keys, one index lookup each (a DISTINCT would read every point)."""
    table = schema.metrics
    keys: list[str] = []
    while True:
        query = select(func.min(table.c.key)).where(table.c.run_id == run_id)
        key = connection.execute(query.where(table.c.key > keys[-1]) if keys else query).scalar()
        if key is None:
            return keys
        keys.append(key)


def _new_since(connection: Connection, run_id: str, keys: list[str] | None, after: int) -> list[Series]:
    """What was logged after the cursor ``after``: read through the row id, not the run's whole index
    (``run_id || ''`` keeps both databases off the index on run_id, which holds every point of the run)."""
    table = schema.metrics
    query = select(table.c.key, func.count(), func.count(table.c.step), func.min(table.c.step),
                   func.max(table.c.step), func.max(table.c.id)).where(
        table.c.id > after, (table.c.run_id + "") == run_id).group_by(table.c.key)
    if keys:
        query = query.where(table.c.key.in_(keys))
    return [Series(run_id, *row) for row in connection.execute(query)]


def _in_range(by_step: bool, start: float | None, end: float | None) -> Any:
    column = schema.metrics.c.step if by_step else schema.metrics.c.timestamp
    conditions: list[Any] = [column.isnot(None)]
    if start is not None:
        conditions.append(column >= (math.ceil(start) if by_step else start))
    if end is not None:
        conditions.append(column <= (math.floor(end) if by_step else end))
    return and_(*conditions)


def _where(run_id: str, series: Series, start: float | None, end: float | None, axis: str | None,
           after: int) -> Any:
    table = schema.metrics
    conditions: list[Any] = [table.c.run_id == run_id, table.c.key == series.key]
    if after:
        conditions.append(table.c.id > after)
    if start is not None or end is not None:
        conditions.append(_in_range(series.by_step(axis), start, end))
    return and_(*conditions)


def _raw(connection: Connection, where: Any, by_step: bool) -> list[Point]:
    table = schema.metrics
    order = table.c.step if by_step else table.c.timestamp
    query = select(table.c.step, table.c.value, table.c.timestamp).where(where).order_by(order, table.c.id)
    return [(step, math.nan if value is None else value, stamp) for step, value, stamp in connection.execute(query)]


def _sampled(connection: Connection, where: Any, series: Series, buckets: int, axis: str | None,
             per_bucket: bool) -> list[Point]:
    table = schema.metrics
    by_step = series.by_step(axis)
    if by_step:
        low, high = int(series.low_step or 0), int(series.high_step or 0)
        x: Any = table.c.step - low
    else:  # integer milliseconds: the same integer division on SQLite and PostgreSQL
        low_time, high_time = connection.execute(
            select(func.min(table.c.timestamp), func.max(table.c.timestamp)).where(where)).one()
        low, high = int(low_time * 1000), int(high_time * 1000) + 1
        x = cast(table.c.timestamp * 1000, BigInteger) - low
    width = max(1, -(-(high - low + 1) // buckets))
    if by_step and per_bucket:
        return _points(_step_buckets(connection, series, low, high, width), by_step)
    bucket = (x // width).label("bucket")
    query = (select(func.count(), func.min(table.c.step), func.max(table.c.step), func.min(table.c.value),
                    func.max(table.c.value), func.avg(table.c.value), func.count(table.c.value),
                    func.min(table.c.timestamp), func.max(table.c.timestamp))
             .where(where).group_by(bucket).order_by(bucket))
    return _points(connection.execute(query), by_step)


# SQLite sorts a GROUP BY on an expression (a third of the time on 250k points); one range read
# of the index per bucket needs no sort. The range is the zoom's, when there is one.
_STEP_BUCKETS = text("""
WITH RECURSIVE bucket(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM bucket WHERE i < :count - 1)
SELECT (SELECT json_array(count(*), min(step), max(step), min(value), max(value), avg(value), count(value),
                          min(timestamp), max(timestamp))
        FROM metrics WHERE run_id = :run_id AND key = :key
          AND step >= :low + i * :width AND step < :low + (i + 1) * :width AND step <= :high)
FROM bucket
""")


def _step_buckets(connection: Connection, series: Series, low: int, high: int, width: int) -> list[Any]:
    parameters = {"count": (high - low) // width + 1, "run_id": series.run_id, "key": series.key, "low": low,
                  "high": high, "width": width}
    rows = (json.loads(found) for (found,) in connection.execute(_STEP_BUCKETS, parameters))
    return [row for row in rows if row[0]]


def _points(rows: Iterable[Any], by_step: bool) -> list[Point]:
    """Each bucket as a NaN marker (when it had one), then its min and max in the trend's order."""
    points: list[Point] = []
    previous_mean: float | None = None
    for count, first_step, last_step, low_value, high_value, mean, valued, first_time, last_time in rows:
        steps = (first_step, last_step) if by_step else (None, None)
        if valued < count:
            points.append((steps[0], math.nan, first_time))
        if valued:
            rising = previous_mean is None or mean is None or not mean < previous_mean
            ends = (low_value, high_value) if rising else (high_value, low_value)
            points.append((steps[0], ends[0], first_time))
            if count > 1:
                points.append((steps[1], ends[1], last_time))
            previous_mean = mean if mean is not None and not math.isnan(mean) else previous_mean
    return points
