"""The dispatcher inside ``tidal server``: waiting runs go to Ray only when their cluster has the
resources they ask for free, so a thousand submissions wait in the store (a row each) instead of
flooding Ray's head (a supervisor actor of ~85 MB per job, ray #60159).

Every ``QUEUE_POLL_SECONDS`` it (1) reconciles the runs on Ray with their jobs (started, ended,
stopped after a cancel, vanished: lost) and (2) walks the waiting runs, highest priority first,
per cluster: free resources (Ray's load report) minus what runs handed over but not started yet
will take; a run that fits is handed over, one that does not keeps the reason on its entry ("needs
1 GPU, cluster has 0 free") and lets smaller ones behind it go first (backfill). At most
``QUEUE_MAX_PENDING`` runs per cluster wait on Ray to start. With ``TIDAL_QUEUE_AUTOSCALING`` a
run that does not fit is handed over when no other run waits on Ray, for Ray's autoscaler to start
the node it needs (GPU nodes scaled to zero).

Backfill ends where it would starve a big run: once the first run still waiting on a cluster has
waited longer than ``TIDAL_QUEUE_BACKFILL_SECONDS`` (since it was queued), it holds the queue —
nothing behind it is handed over until it has been, so the runs on Ray end and free what it asks
for ("holds the queue: waiting for 2 GPUs since 12:03; the runs behind it wait until it starts").
A run that asks for more than the cluster's nodes have in all holds nothing (it cannot start until
an operator adds a node), unless Ray's autoscaler may add one.

Example::

    dispatcher = Dispatcher(store, token=server_token)
    dispatcher.start()          # a daemon thread; dispatcher.tick() does one round by hand
    dispatcher.stop()
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from typing import Any

from tidal import settings
from tidal.errors import ConfigError, TidalError
from tidal.remote.cluster import RayCluster
from tidal.remote.handover import hand_over, reconcile
from tidal.remote.resources import Resources, lacking, shortfall
from tidal.remote.spec import RemoteSpec
from tidal.status import QueueStatus
from tidal.tracking.store import Store

log = logging.getLogger("tidal.remote")
WAITING, SUBMITTED = QueueStatus.WAITING.value, QueueStatus.SUBMITTED.value
ON_RAY = [status.value for status in QueueStatus.on_ray()]


class Dispatcher:
    """Hands ``store``'s waiting runs to Ray and watches them there; ``token`` goes to the jobs'
    environment (the server's own, so the remote script can log to it)."""

    def __init__(self, store: Store, token: str | None = None, *, poll_seconds: float = settings.QUEUE_POLL_SECONDS,
                 max_pending: int = settings.QUEUE_MAX_PENDING, autoscaling: bool | None = None,
                 backfill_seconds: float | None = None) -> None:
        self.store = store
        self.token = token
        self.poll_seconds = poll_seconds
        self.max_pending = max_pending
        self.autoscaling = settings.queue_autoscaling() if autoscaling is None else autoscaling
        self.backfill_seconds = settings.queue_backfill_seconds() if backfill_seconds is None else backfill_seconds
        self.clusters: dict[str, RayCluster] = {}
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="tidal-dispatcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self.tick()
            except TidalError as error:  # the store is down: try again next round
                log.warning("tidal dispatcher: %s", error)
            except Exception:  # a defect must not stop the queue for good: said, and tried again next round
                log.exception("tidal dispatcher: a round failed")
            self._stopping.wait(self.poll_seconds)

    def tick(self) -> None:
        """One round: reconcile the runs on Ray, then hand over what fits."""
        on_ray = self.store.queue_entries(ON_RAY)
        for entry in on_ray:
            self._reconcile(entry)
        waiting: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for entry in self.store.queue_entries([WAITING]):
            waiting[entry["address"]].append(entry)
        pending = self.store.queue_entries([SUBMITTED])
        for address, entries in waiting.items():
            self._dispatch(address, entries, [entry for entry in pending if entry["address"] == address])

    def _reconcile(self, entry: dict[str, Any]) -> None:
        try:
            reconcile(self.store, entry, self._cluster(entry["address"]))
        except ConfigError as error:  # Ray unreachable: the entry stays as it is until it answers
            self.clusters.pop(entry["address"], None)
            log.warning("tidal dispatcher: run %s: %s", entry["run_id"], error)
        except TidalError:
            raise  # the store: the whole round waits for it
        except Exception:  # one entry's defect holds up neither the others nor the waiting runs
            log.exception("tidal dispatcher: run %s could not be reconciled", entry["run_id"])

    def _dispatch(self, address: str, waiting: list[dict[str, Any]], pending: list[dict[str, Any]]) -> None:
        try:
            cluster = self._cluster(address)
            free, total = cluster.capacity()
        except ConfigError as error:
            self.clusters.pop(address, None)
            for entry in waiting:
                self._wait(entry, str(error))
            return
        for entry in pending:
            free = free - _needs(entry)
        holder: dict[str, Any] | None = None
        first = True  # no run that can start on this cluster waits ahead of this one
        for entry in waiting:
            if holder is not None:
                self._wait(entry, f"waits behind run {holder['run_id']}, which holds the queue "
                                  f"({_waiting_for(holder, free)})")
                continue
            reason = self._offer(entry, cluster, free, pending)
            if pending and pending[-1] is entry:
                free = free - _needs(entry)
            elif reason is not None and first and self._holds(entry, free, total):
                holder = entry
                self._wait(entry, f"holds the queue: {_waiting_for(entry, free)}; the runs behind it wait "
                                  "until it starts")
            elif reason is not None:
                first = first and not self._can_start(entry, total)
                self._wait(entry, reason)

    def _offer(self, entry: dict[str, Any], cluster: RayCluster, free: Resources,
               pending: list[dict[str, Any]]) -> str | None:
        """Hand ``entry`` over when it fits (appended to ``pending``); else why it waits."""
        if len(pending) >= self.max_pending:
            return f"{len(pending)} runs wait on Ray at {cluster.address} to start; next when one does"
        reason = shortfall(_needs(entry), free)
        if reason and not (self.autoscaling and not pending):
            return reason
        if not self.store.update_queue_entry(entry["run_id"], {"status": SUBMITTED}, only_if=[WAITING]):
            return None  # cancelled meanwhile
        try:
            hand_over(self.store, entry, cluster, self.token)
        except ConfigError as error:
            log.warning("tidal dispatcher: run %s: %s", entry["run_id"], error)
            return None
        pending.append(entry)
        return None

    def _holds(self, entry: dict[str, Any], free: Resources, total: Resources) -> bool:
        """Whether ``entry``, the first run still waiting, has waited too long to let others past: it
        waits for resources (not for a turn on Ray) that the cluster can give it, past the backfill time."""
        return (shortfall(_needs(entry), free) is not None and self._can_start(entry, total)
                and time.time() - float(entry["created_at"]) > self.backfill_seconds)

    def _can_start(self, entry: dict[str, Any], total: Resources) -> bool:
        """False for a run that asks for more than all the cluster's nodes have (holding the queue for
        it would stop everything for nothing), unless Ray's autoscaler may add the node it needs."""
        return self.autoscaling or shortfall(_needs(entry), total) is None

    def _wait(self, entry: dict[str, Any], reason: str) -> None:
        if entry.get("reason") != reason:
            self.store.update_queue_entry(entry["run_id"], {"reason": reason}, only_if=[WAITING])

    def _cluster(self, address: str) -> RayCluster:
        if address not in self.clusters:
            self.clusters[address] = RayCluster(address)
        return self.clusters[address]


def _needs(entry: dict[str, Any]) -> Resources:
    return RemoteSpec.from_json(entry["spec"]).resources()


def _waiting_for(entry: dict[str, Any], free: Resources) -> str:
    """``"waiting for 2 GPUs since 12:03"``: what of its ask is not free, and since it was queued."""
    queued = time.localtime(float(entry["created_at"]))
    clock = time.strftime("%H:%M" if queued[:3] == time.localtime()[:3] else "%Y-%m-%d %H:%M", queued)
    return f"waiting for {lacking(_needs(entry), free)} since {clock}"
