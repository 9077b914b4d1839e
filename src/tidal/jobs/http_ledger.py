"""The HTTP ledger: a job's ledger on a tidal server, for ``tidal map`` with ``TIDAL_TRACKING_URI=http…``.

Messages are grouped and sent together — at most ``GROUP_SECONDS`` after the first, or sooner
when ``GROUP_ROWS`` rows or ``GROUP_BYTES`` of results have gathered — and the server writes a
group in one transaction. A lost answer is retried by the store's client; writing a message
twice is harmless (the ledger upserts by item key), so the ledger stays exactly-once. What a
crash loses is only the group not yet sent: those items are done again on resume.

Every read sends what is gathered first, so a read reflects every message recorded before it.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Callable, Iterable
from typing import Any

from tidal.engines.base import BatchMessage
from tidal.jobs.ledger import ItemStatus, JobCounts, JobStatus, Ledger, PartitionState, PartitionStatus
from tidal.types import ItemKey, JobId, PartitionId

GROUP_SECONDS = 0.5
GROUP_ROWS = 2_000
GROUP_BYTES = 4 * 1024 * 1024  # well under a server's default request limit (16 MiB)

Call = Callable[..., Any]  # HTTPStore's request function: call(method, path, json_body=..., params=...)


class HTTPLedger(Ledger):
    """One job's ledger through a tidal server's REST API (``/api/v1/jobs/{id}/...``)."""

    def __init__(self, call: Call, job_id: JobId) -> None:
        self.call = call
        self.job_id = job_id
        self.path = f"jobs/{urllib.parse.quote(job_id, safe='')}"
        self.pending: list[dict[str, Any]] = []
        self.pending_rows = 0
        self.pending_bytes = 0
        self.first_pending = 0.0

    def register(self, name: str, config: dict[str, Any], config_file: str | None) -> None:
        self.call("PUT", self.path, json_body={"name": name, "config": config, "config_file": config_file})

    def set_status(self, status: JobStatus, total_items: int | None = None) -> None:
        self.flush()
        self.call("PATCH", self.path, json_body={"status": status.value, "total_items": total_items})

    def partition_states(self) -> dict[PartitionId, PartitionState]:
        self.flush()
        found = self.call("GET", f"{self.path}/partitions").json()["partitions"]
        return {pid: PartitionState(PartitionStatus(status), failed) for pid, (status, failed) in found.items()}

    def keys(self, partition_id: PartitionId, statuses: Iterable[ItemStatus]) -> set[ItemKey]:
        self.flush()
        params = {"partition": partition_id, "status": [status.value for status in statuses]}
        return set(self.call("GET", f"{self.path}/keys", params=params).json()["keys"])

    def record(self, message: BatchMessage) -> None:
        for part in _parts(message):
            self._gather(part)

    def _gather(self, message: BatchMessage) -> None:
        if not self.pending:
            self.first_pending = time.monotonic()
        size = sum(_row_bytes(row) for row in message.rows)
        if self.pending and self.pending_bytes + size > GROUP_BYTES:
            self.flush()  # keep each request under the group's size
        self.pending.append(encode_message(message))
        self.pending_rows += len(message.rows)
        self.pending_bytes += size
        if (self.pending_rows >= GROUP_ROWS or self.pending_bytes >= GROUP_BYTES
                or time.monotonic() - self.first_pending >= GROUP_SECONDS):
            self.flush()

    def flush(self) -> None:
        """Send the gathered group. On an error it is dropped all the same (and the error raised):
        kept, a group the server refuses would block every later write; dropped, its items are
        simply not done, and a resume does them."""
        if not self.pending:
            return
        group = self.pending
        self.pending, self.pending_rows, self.pending_bytes = [], 0, 0
        self.call("POST", f"{self.path}/messages", json_body={"messages": group})

    def counts(self) -> JobCounts:
        self.flush()
        found = self.call("GET", f"{self.path}/counts").json()
        return JobCounts(found["done"], found["failed_items"], found["failed_partitions"])


def _row_bytes(row: Any) -> int:
    return len(row[2] or "") + len(row[6] or "") + len(row[7] or "") + len(row[8] or "") + 64


def _parts(message: BatchMessage) -> list[BatchMessage]:
    """A message too large for one request, as several in order, the partition's end on the last.

    Safe because every row stands alone (an item is done with its result or not there); only
    the partition's end must come after all its rows.
    """
    parts: list[BatchMessage] = []
    rows: list[Any] = []
    size = 0
    for row in message.rows:
        if rows and size + _row_bytes(row) > GROUP_BYTES:
            parts.append(BatchMessage(message.partition_id, rows, None, _failed(rows)))
            rows, size = [], 0
        rows.append(row)
        size += _row_bytes(row)
    parts.append(BatchMessage(message.partition_id, rows, message.end, _failed(rows)))
    return parts


def _failed(rows: list[Any]) -> int:
    return sum(1 for row in rows if row[8] is not None)


def encode_message(message: BatchMessage) -> dict[str, Any]:
    """A message as JSON: rows as lists in the order of the items table's columns."""
    return {"partition_id": message.partition_id, "rows": [list(row) for row in message.rows],
            "end": list(message.end) if message.end is not None else None, "failed": message.failed}


def decode_message(job_id: JobId, data: dict[str, Any]) -> BatchMessage:
    """A message back from its JSON form (already validated); every row is put in ``job_id``, the
    job of the URL, whatever the row says: a client writes only to the job it names."""
    from tidal.engines.base import Row

    rows = [Row(job_id, *row[1:]) for row in data["rows"]]
    end = data.get("end")
    return BatchMessage(data["partition_id"], rows, (end[0], end[1]) if end else None, int(data.get("failed", 0)))
