"""The service's tracked run (kind ``service``): its settings, then requests, latency
percentiles, cold starts and worker lifetimes as metrics.

Logging never blocks a request: the run's background writer thread does the writing. A store
that cannot be opened leaves the service untracked with a warning, never down.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

from tidal.errors import TidalError
from tidal.serve.config import ServiceConfig
from tidal.serve.hooks import ProcessorInfo

LOG = logging.getLogger("tidal.serve")


class ServiceTracker:
    """The service's tracked run (kind ``service``); never blocks a request (the run's writer
    thread does the writing)."""

    def __init__(self, run: Any = None) -> None:
        self.run = run
        self.step = 0
        self.last_workers = -1

    @classmethod
    def start(cls, config: ServiceConfig, info: ProcessorInfo) -> ServiceTracker:
        from tidal.tracking.run import Run
        from tidal.tracking.stores import open_store

        settings = {"processor": info.canonical, "http": asdict(config.http), "media": asdict(config.media),
                    "origin": config.origin}
        try:
            run = Run(open_store(), project=config.project, name=config.name, kind="service", config=settings,
                      capture=False)
        except TidalError as error:
            LOG.warning("this service is not tracked: %s", error)
            return cls()
        LOG.info("tracking this service as run %s (project %s)", run.id, config.project)
        return cls(run)

    def report(self, window: dict[str, float] | None, totals: dict[str, float]) -> None:
        """Log the window's latency percentiles and the totals, when something happened."""
        if self.run is None or (window is None and totals["workers"] == self.last_workers):
            return
        self.last_workers = int(totals["workers"])
        self.run.log_metrics({**(window or {"requests": 0.0}), **totals}, step=self.step)
        self.step += 1

    def worker_exited(self, lifetime: float) -> None:
        """Log how long a worker lived (start to exit)."""
        if self.run is not None:
            self.run.log_metric("worker_lifetime_seconds", lifetime)

    def finish(self) -> None:
        """Mark the run completed (the service stopped)."""
        if self.run is not None:
            self.run.finish()
