"""Type aliases shared across tidal."""

from __future__ import annotations

from typing import Any

ItemKey = str
"""Stable identity of one item, e.g. ``videos/a.mp4@<fingerprint>#120``."""

PartitionId = str
"""Stable identity of one partition, e.g. ``videos/a.mp4@<fingerprint>:0-299``."""

JobId = str
"""The hash of a job's canonical config (12 hex digits)."""

Result = dict[str, Any]
"""What a processor returns for one item: a JSON-serialisable mapping."""
