"""The dispatcher inside ``tidal server``: waiting runs go to Ray only when their cluster has the
resources they ask for free, so a thousand submissions wait in the store (a row each) instead of
flooding Ray's head (a supervisor actor of ~85 MB per job, ray #60159).

Every ``QUEUE_POLL_SECONDS`` it (1) reconciles the runs on Ray with their jobs (started, ended,
stopped after a cancel, vanished: lost) and (2) walks the waiting runs, highest priority first,
per cluster: free resources (Ray's load report) minus what runs handed over but not started yet
will take; a run that fits is handed over, one that does not keeps the reason on its entry ("needs
1 GPU, cluster has 0 free") and lets smaller ones behind it go first. At most
``QUEUE_MAX_PENDING`` runs per cluster wait on Ray to start. With ``TIDAL_QUEUE_AUTOSCALING`` a
run that does not fit is handed over when no other run waits on Ray, for Ray's autoscaler to start
the node it needs (GPU nodes scaled to zero).

Example::

    dispatcher = Dispatcher(store, token=server_token)
    dispatcher.start()          # a daemon thread; dispatcher.tick() does one round by hand
    dispatcher.stop()
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from typing import Any

from tidal import settings
from tidal.errors import ConfigError, TidalError
from tidal.remote.cluster import RayCluster
from tidal.remote.handover import hand_over, reconcile
from tidal.remote.resources import Resources, shortfall
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
                 max_pending: int = settings.QUEUE_MAX_PENDING, autoscaling: bool | None = None) -> None:
        self.store = store
        self.token = token
        self.poll_seconds = poll_seconds
        self.max_pending = max_pending
        self.autoscaling = settings.queue_autoscaling() if autoscaling is None else autoscaling
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

    def _dispatch(self, address: str, waiting: list[dict[str, Any]], pending: list[dict[str, Any]]) -> None:
        try:
            cluster = self._cluster(address)
            free = cluster.free()
        except ConfigError as error:
            self.clusters.pop(address, None)
            for entry in waiting:
                self._wait(entry, str(error))
            return
        for entry in pending:
            free = free - _needs(entry)
        for entry in waiting:
            self._offer(entry, cluster, free, pending)
            if pending and pending[-1] is entry:
                free = free - _needs(entry)

    def _offer(self, entry: dict[str, Any], cluster: RayCluster, free: Resources,
               pending: list[dict[str, Any]]) -> None:
        """Hand ``entry`` over when it fits (appended to ``pending``), or record why it waits."""
        if len(pending) >= self.max_pending:
            self._wait(entry, f"{len(pending)} runs wait on Ray at {cluster.address} to start; next when one does")
            return
        reason = shortfall(_needs(entry), free)
        if reason and not (self.autoscaling and not pending):
            self._wait(entry, reason)
            return
        if not self.store.update_queue_entry(entry["run_id"], {"status": SUBMITTED}, only_if=[WAITING]):
            return  # cancelled meanwhile
        try:
            hand_over(self.store, entry, cluster, self.token)
        except ConfigError as error:
            log.warning("tidal dispatcher: run %s: %s", entry["run_id"], error)
            return
        pending.append(entry)

    def _wait(self, entry: dict[str, Any], reason: str) -> None:
        if entry.get("reason") != reason:
            self.store.update_queue_entry(entry["run_id"], {"reason": reason}, only_if=[WAITING])

    def _cluster(self, address: str) -> RayCluster:
        if address not in self.clusters:
            self.clusters[address] = RayCluster(address)
        return self.clusters[address]


def _needs(entry: dict[str, Any]) -> Resources:
    return RemoteSpec.from_json(entry["spec"]).resources()
