"""The queue's commands over a store: ``tidal queue ls/cancel/retry`` and what the dashboard shows.

With a tidal server (an HTTP store) the server's dispatcher talks to Ray: a cancel marks the entry
and the dispatcher stops Ray's job; a retry puts the run back in the queue. Without a server
(direct mode: the embedded or a SQL store) these functions talk to Ray themselves. Either way one
entry changes, nothing else in the queue.

Example::

    entries = refreshed_entries(store)            # direct mode: brought up to date with Ray first
    cancel(store, run_id)
    retry(store, run_id)
"""

from __future__ import annotations

import time
from typing import Any

from tidal.errors import ConfigError, UsageError
from tidal.remote.cluster import RayCluster
from tidal.remote.handover import hand_over, reconcile
from tidal.remote.spec import RemoteSpec
from tidal.status import QueueStatus, RunStatus
from tidal.tracking.store import Store

WAITING, CANCELLING = QueueStatus.WAITING.value, QueueStatus.CANCELLING.value
ON_RAY = [status.value for status in QueueStatus.on_ray()]
ENDED = [status.value for status in QueueStatus.ended()]


def is_served(store: Store) -> bool:
    """Whether a tidal server (and so its dispatcher) stands between this store and Ray."""
    from tidal.tracking.httpstore import HTTPStore

    return isinstance(store, HTTPStore)


def refreshed_entries(store: Store, statuses: list[str] | None = None, limit: int = 1000) -> list[dict[str, Any]]:
    """The queue; in direct mode the entries on Ray are first reconciled with it (unreachable: left as they are)."""
    if not is_served(store):
        clusters: dict[str, RayCluster | None] = {}
        for entry in store.queue_entries(ON_RAY, limit):
            cluster = _reachable(clusters, entry["address"])
            if cluster is not None:
                reconcile(store, entry, cluster)
    return store.queue_entries(statuses, limit)


def cancel(store: Store, run_id: str) -> str:
    """Cancel one submitted run: a waiting one leaves the queue, one on Ray is stopped there. Its new status."""
    ended_at = time.time()
    if store.update_queue_entry(run_id, {"status": QueueStatus.CANCELLED.value, "ended_at": ended_at,
                                         "reason": "cancelled before it started"}, only_if=[WAITING]):
        store.update_run(run_id, {"status": RunStatus.INTERRUPTED.value, "ended_at": ended_at,
                                  "error": "cancelled in the queue (tidal queue cancel)"})
        return QueueStatus.CANCELLED.value
    if not store.update_queue_entry(run_id, {"status": CANCELLING}, only_if=ON_RAY):
        status = store.queue_entry(run_id)["status"]
        raise UsageError(f"run {run_id} is {status} already; only a waiting or running run can be cancelled")
    if is_served(store):
        return CANCELLING  # the server's dispatcher stops Ray's job
    entry = store.queue_entry(run_id)
    return reconcile(store, entry, RayCluster(entry["address"]))


def retry(store: Store, run_id: str) -> str:
    """Queue an ended run again (same run, same code); in direct mode it is handed to Ray at once."""
    entry = store.queue_entry(run_id)
    if entry["status"] not in ENDED:
        raise UsageError(f"run {run_id} is {entry['status']}; only an ended run (done, failed, cancelled, lost) "
                         "can be retried")
    served = is_served(store)
    status = WAITING if served else QueueStatus.SUBMITTED.value
    if not store.update_queue_entry(run_id, {"status": status, "reason": None, "ended_at": None,
                                             "ray_job_id": None}, only_if=ENDED):
        raise UsageError(f"run {run_id} changed while retrying it; look at `tidal queue ls` and try again")
    store.update_run(run_id, {"status": RunStatus.QUEUED.value, "ended_at": None, "error": None})
    if served:
        return WAITING
    from tidal import settings

    hand_over(store, store.queue_entry(run_id), RayCluster(entry["address"]), settings.token())
    return QueueStatus.SUBMITTED.value


def queue_view(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Entries as the dashboard and ``tidal queue ls`` show them: resources as text, waiting time."""
    now = time.time()
    return [entry | {"resources": describe_resources(entry.get("spec") or {}), "active": entry["status"] not in ENDED,
                     "waited": (entry.get("submitted_at") or now) - entry["created_at"]} for entry in entries]


def describe_resources(spec: dict[str, Any]) -> str:
    """``"1 GPU, 1 CPU"``: what the run asked for."""
    resources = RemoteSpec.from_json(spec).resources() if spec.get("script") else None
    if resources is None:
        return ""
    parts = [f"{resources.gpus:g} GPU" if resources.gpus else "", f"{resources.cpus:g} CPU" if resources.cpus else "",
             f"{resources.memory / 2**30:.1f} GiB" if resources.memory else ""]
    return ", ".join(part for part in parts if part)


def _reachable(clusters: dict[str, RayCluster | None], address: str) -> RayCluster | None:
    if address not in clusters:
        try:
            clusters[address] = RayCluster(address)
        except ConfigError:
            clusters[address] = None
    return clusters[address]
