"""Metric series cut down in SQL for a chart: the SQL store's half of ``Store.sampled_metrics``.

A 1M-point run must not travel to a browser whole (34 MB of page, seconds to draw): the database
groups each series into equal spans of its x axis and returns, per span, the count, the first and
last x, the minimum, maximum and mean, and how many values were NaN. Each span becomes at most
three points: a NaN marker when it had one, then its minimum and maximum in the order the trend
runs (a falling loss draws max then min), so a spike is never averaged away. Spans are integer
divisions of integer x values (steps; timestamps in milliseconds), which SQLite and PostgreSQL
compute the same way and which cannot overflow.

Example::

    with engine.connect() as connection:
        sample(connection, run_id, buckets=600)   # {"metrics": {...}, "sampled": [...], "last": 1234}
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, and_, cast, func, select
from sqlalchemy.engine import Connection

from tidal.errors import UsageError
from tidal.tracking import schema

MAX_BUCKETS = 10_000
Point = tuple[int | None, float, float]


@dataclass
class Series:
    """What one key's points look like before they are read: their count and x range."""

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
    last = after
    for series in _describe(connection, run_id, keys, start, end, axis, after):
        last = max(last, series.last_id)
        where = _where(run_id, series, start, end, axis, after)
        if series.count <= 2 * buckets:
            metrics[series.key] = _raw(connection, where, series.by_step(axis))
        else:
            metrics[series.key] = _sampled(connection, where, series, buckets, axis)
            sampled.append(series.key)
    return {"metrics": metrics, "sampled": sampled, "last": last}


def _describe(connection: Connection, run_id: str, keys: list[str] | None, start: float | None,
              end: float | None, axis: str | None, after: int) -> list[Series]:
    table = schema.metrics
    # only columns of the index (run_id, key, step) and the row id: no table row is read
    query = select(table.c.key, func.count(), func.count(table.c.step), func.min(table.c.step),
                   func.max(table.c.step), func.max(table.c.id)).where(table.c.run_id == run_id).group_by(table.c.key)
    if keys:
        query = query.where(table.c.key.in_(keys))
    if after:
        query = query.where(table.c.id > after)
    found = [Series(*row) for row in connection.execute(query)]
    if start is None and end is None:
        return found
    # a zoom: count again inside the range, on the axis each series is drawn on
    ranged = []
    for series in found:
        rows = connection.execute(query.where(table.c.key == series.key)
                                  .where(_in_range(series.by_step(axis), start, end))).all()
        ranged += [Series(*row) for row in rows if row[1]]
    return ranged


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


def _sampled(connection: Connection, where: Any, series: Series, buckets: int, axis: str | None) -> list[Point]:
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
    bucket = (x // width).label("bucket")
    query = (select(bucket, func.count(), func.min(table.c.step), func.max(table.c.step), func.min(table.c.value),
                    func.max(table.c.value), func.avg(table.c.value), func.count(table.c.value),
                    func.min(table.c.timestamp), func.max(table.c.timestamp))
             .where(where).group_by(bucket).order_by(bucket))
    points: list[Point] = []
    previous_mean: float | None = None
    for _, count, first_step, last_step, low_value, high_value, mean, valued, first_time, last_time in \
            connection.execute(query):
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
