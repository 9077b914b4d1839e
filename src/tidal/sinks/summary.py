"""Per-group statistics of a job's numeric result fields (``tidal results summary``).

Numbers are summarised as they are; lists of numbers are unrolled into ``field[0]``,
``field[1]``... (``shares[0]`` is the share of the most dominant colour).
"""

from __future__ import annotations

import fnmatch
import math
from collections import defaultdict
from typing import Any

from tidal.tracking.store import Store

GROUP_ALIASES = {"video": "path", "file": "path", "image": "path"}
MAX_LEAVES = 32  # per field: keeps a 5x3 colour list, skips embeddings
STATISTICS = ("count", "mean", "std", "min", "p25", "p50", "p75", "max")
META_FIELDS = {"key", "path", "frame_index", "time", "member", "index"}


def summarize(store: Store, job_id: str, by: str | None = None,
              fields: list[str] | None = None) -> list[dict[str, Any]]:
    """One record per (group, field) with count, mean, std, min, quartiles and max.

    ``fields``: shell-style patterns (``shares*``) selecting the fields to summarise.
    """
    group_field = GROUP_ALIASES.get(by or "", by)
    values: dict[tuple[Any, str], list[float]] = defaultdict(list)
    for row in store.results(job_id):
        group = row.get(group_field) if group_field else "all"
        for name, value in row.items():
            if name not in META_FIELDS and name != group_field:
                for leaf, number in _numbers(name, value):
                    if not fields or any(fnmatch.fnmatchcase(leaf, pattern) for pattern in fields):
                        values[(group, leaf)].append(number)
    return [{"group": group, "field": leaf, **_statistics(numbers)}
            for (group, leaf), numbers in values.items()]


def _numbers(name: str, value: Any) -> list[tuple[str, float]]:
    if isinstance(value, bool):
        return [(name, float(value))]
    if isinstance(value, (int, float)):
        return [(name, float(value))]
    if isinstance(value, list):
        leaves = [leaf for i, item in enumerate(value) for leaf in _numbers(f"{name}[{i}]", item)]
        return leaves if len(leaves) <= MAX_LEAVES else []
    return []


def _statistics(numbers: list[float]) -> dict[str, float]:
    import numpy as np

    array = np.asarray(numbers, dtype=np.float64)
    finite = array[np.isfinite(array)]
    if finite.size == 0:
        return {"count": float(array.size)} | {name: math.nan for name in STATISTICS[1:]}
    p25, p50, p75 = np.percentile(finite, [25, 50, 75])
    return {"count": float(array.size), "mean": float(finite.mean()), "std": float(finite.std()),
            "min": float(finite.min()), "p25": float(p25), "p50": float(p50), "p75": float(p75),
            "max": float(finite.max())}
