"""Reducers: turn the rows of one group (one video, one person...) into one row, in a pipeline's
reduce step::

    video: {from: "measure", group_by: "path", reduce: {"tidal.reducers.Describe": {fields: ["height*"]}}}

A reducer is the plug-in point of reduce steps: subclass :class:`Reducer`, implement
:meth:`Reducer.reduce`, and name it in the config (its module listed under ``imports``).
"""

from __future__ import annotations

import fnmatch
import math
from typing import Any

__all__ = ["Describe", "Reducer"]

NUMERIC = (int, float)
DESCRIBE_STATISTICS = ("count", "mean", "std", "min", "25%", "50%", "75%", "max")


class Reducer:
    """Base class of reducers: one result row per group of an earlier step's rows.

    Example::

        class Longest(Reducer):
            def reduce(self, rows):
                return {"frames": len(rows), "longest_arm": max(row["arm_length"] for row in rows)}
    """

    def reduce(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """The group's result: a JSON-able mapping. ``rows`` are the earlier step's flat rows
        (key, the item's metadata, the result's fields). Raising fails this group only."""
        raise NotImplementedError

    def check_fields(self, fields: dict[str, Any]) -> str | None:
        """Before any work: what is wrong with the earlier step's declared ``fields`` (name →
        type) for this reducer, or None. The default accepts anything."""
        return None


class Describe(Reducer):
    """count, mean, std, min, quartiles and max of numeric fields, like pandas' ``describe()``:
    ``std`` is the sample standard deviation (``ddof=1``), quartiles interpolate linearly, and
    missing or non-finite values are not counted. Each statistic is a column ``FIELD.STAT``
    (``shoulder_width.mean``), so an export has one row per group.

    ``fields``: shell-style patterns (``height*``) of the fields to describe; by default every
    numeric field (booleans as 0/1).

    Example::

        Describe(fields=["*_ratio"]).reduce([{"arm_ratio": 0.4}, {"arm_ratio": 0.5}])
        # {"rows": 2, "arm_ratio.count": 2, "arm_ratio.mean": 0.45, ...}
    """

    def __init__(self, fields: list[str] | None = None) -> None:
        self.fields = list(fields or [])

    def check_fields(self, fields: dict[str, Any]) -> str | None:
        for pattern in self.fields:
            matching = [name for name in fields if fnmatch.fnmatchcase(name, pattern)]
            if not matching:
                return f"fields: {pattern!r} matches no field of the earlier step"
            wrong = [name for name in matching if not _is_numeric_type(fields[name])]
            if wrong:
                return (f"fields: {pattern!r} matches {', '.join(wrong)}, which is not numeric "
                        f"({fields[wrong[0]]!r}); describe numbers only, e.g. narrow the pattern")
        return None

    def reduce(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        columns: dict[str, list[float]] = {}
        for row in rows:
            for name, value in row.items():
                if self._wanted(name, value):
                    columns.setdefault(name, []).append(float(value))
        result: dict[str, Any] = {"rows": len(rows)}
        for name in sorted(columns):
            result |= {f"{name}.{stat}": value for stat, value in describe(columns[name]).items()}
        return result

    def _wanted(self, name: str, value: Any) -> bool:
        if not isinstance(value, NUMERIC) or (isinstance(value, float) and not math.isfinite(value)):
            return False
        if self.fields:
            return any(fnmatch.fnmatchcase(name, pattern) for pattern in self.fields)
        return name not in ("frame_index", "index", "time")


def describe(values: list[float]) -> dict[str, float]:
    """pandas' ``Series.describe()`` of ``values``: count, mean, std (ddof=1), min, 25%, 50%, 75%, max."""
    import numpy as np

    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        return {"count": 0.0} | {stat: math.nan for stat in DESCRIBE_STATISTICS[1:]}
    p25, p50, p75 = np.percentile(array, [25, 50, 75])
    std = float(array.std(ddof=1)) if array.size > 1 else math.nan
    return {"count": float(array.size), "mean": float(array.mean()), "std": std, "min": float(array.min()),
            "25%": float(p25), "50%": float(p50), "75%": float(p75), "max": float(array.max())}


def _is_numeric_type(kind: Any) -> bool:
    return kind in (int, float, bool, Any) or kind in ("int", "float", "bool", "number")
