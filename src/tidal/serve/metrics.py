"""A service's metrics in the Prometheus text format, written by hand (no client library).

``GET /metrics`` shows::

    tidal_serve_requests_total{code="200"}         requests answered, by status code
    tidal_serve_request_seconds                    request latency (histogram), waiting included
    tidal_serve_batch_items                        items per process() call (histogram)
    tidal_serve_batch_requests                     requests per process() call (histogram)
    tidal_serve_cold_starts_total                  workers started while none was ready
    tidal_serve_cold_start_seconds                 start to ready of every worker (histogram)
    tidal_serve_worker_starts_total{reason=...}    cold, scale_up, min_workers
    tidal_serve_worker_exits_total{reason=...}     idle, crash, stuck, setup_failed, shutdown
    tidal_serve_workers{state=...}                 workers starting, ready, stopping
    tidal_serve_queue_requests                     requests held for a worker

Everything runs on the front's event loop: no locks.
"""

from __future__ import annotations

import bisect
import math
import time
from collections import deque
from collections.abc import Callable, Iterable

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
COLD_START_BUCKETS = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0)
SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
WINDOW_LIMIT = 10_000  # latencies kept between two reports to the tracking store
DRAIN_WINDOW_SECONDS = 30.0  # the drain rate counts the requests answered in this window


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{key}="{_escape(value)}"' for key, value in sorted(labels.items()))
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class Counter:
    """A monotonically increasing count, optionally split by one label."""

    kind = "counter"

    def __init__(self, name: str, help_text: str, label: str | None = None) -> None:
        self.name = name
        self.help = help_text
        self.label = label
        self.values: dict[str, float] = {} if label else {"": 0.0}

    def inc(self, amount: float = 1.0, label: str = "") -> None:
        self.values[label] = self.values.get(label, 0.0) + amount

    def total(self) -> float:
        return sum(self.values.values())

    def samples(self) -> Iterable[str]:
        for value_label, value in sorted(self.values.items()):
            labels = {self.label: value_label} if self.label else {}
            yield f"{self.name}{_labels(labels)} {_number(value)}"


class Gauge(Counter):
    """A value that goes up and down."""

    kind = "gauge"

    def set(self, value: float, label: str = "") -> None:
        self.values[label] = value


class Histogram:
    """Counts of observations at or below each bucket bound, their sum and count."""

    kind = "histogram"

    def __init__(self, name: str, help_text: str, buckets: tuple[float, ...]) -> None:
        self.name = name
        self.help = help_text
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)  # the last one: above every bound
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sum += value
        self.count += 1

    def samples(self) -> Iterable[str]:
        cumulative = 0
        for bound, count in zip((*self.buckets, math.inf), self.counts, strict=True):
            cumulative += count
            yield f'{self.name}_bucket{{le="{_number(bound)}"}} {cumulative}'
        yield f"{self.name}_sum {_number(self.sum)}"
        yield f"{self.name}_count {self.count}"


class LatencyWindow:
    """Latencies since the last report, for percentiles (bounded: a reservoir of the latest)."""

    def __init__(self, limit: int = WINDOW_LIMIT) -> None:
        self.limit = limit
        self.values: list[float] = []
        self.count = 0

    def add(self, seconds: float) -> None:
        self.count += 1
        if len(self.values) < self.limit:
            self.values.append(seconds)
        else:
            self.values[self.count % self.limit] = seconds

    def take(self) -> dict[str, float] | None:
        """p50, p95, p99 (milliseconds) and the count since the last call; None if no request."""
        if not self.values:
            return None
        ordered = sorted(self.values)
        count = self.count
        self.values, self.count = [], 0
        return {"requests": float(count), **{f"latency_p{q}_ms": 1000 * percentile(ordered, q) for q in (50, 95, 99)}}


class DrainRate:
    """Requests answered per second lately: what ``Retry-After`` divides the queue by.

    Counted over the last ``window`` seconds, from the oldest answer in it to now, so a queue
    that stops draining shows a falling rate rather than the last good one."""

    def __init__(self, window: float = DRAIN_WINDOW_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self.clock = clock
        self.times: deque[float] = deque()

    def record(self) -> None:
        now = self.clock()
        self.times.append(now)
        self._forget(now)

    def per_second(self) -> float | None:
        """Answers per second, or None before two answers in the window."""
        now = self.clock()
        self._forget(now)
        if len(self.times) < 2:
            return None
        return len(self.times) / max(now - self.times[0], 1e-3)

    def _forget(self, now: float) -> None:
        while self.times and self.times[0] < now - self.window:
            self.times.popleft()


def percentile(ordered: list[float], q: float) -> float:
    """The ``q``-th percentile of sorted values (nearest rank)."""
    rank = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[rank]


class ServeMetrics:
    """Every metric of one service."""

    def __init__(self) -> None:
        self.requests = Counter("tidal_serve_requests_total", "Requests answered, by HTTP status code.", "code")
        self.latency = Histogram("tidal_serve_request_seconds", "Request latency in seconds, waiting included.",
                                 LATENCY_BUCKETS)
        self.batch_items = Histogram("tidal_serve_batch_items", "Items per process() call.", SIZE_BUCKETS)
        self.batch_requests = Histogram("tidal_serve_batch_requests", "Requests per process() call.", SIZE_BUCKETS)
        self.cold_starts = Counter("tidal_serve_cold_starts_total", "Workers started while no worker was ready.")
        self.cold_start_seconds = Histogram("tidal_serve_cold_start_seconds",
                                            "Seconds from a worker's start to ready (imports and setup).",
                                            COLD_START_BUCKETS)
        self.worker_starts = Counter("tidal_serve_worker_starts_total", "Workers started, by reason.", "reason")
        self.worker_exits = Counter("tidal_serve_worker_exits_total", "Workers exited, by reason.", "reason")
        self.workers = Gauge("tidal_serve_workers", "Workers by state.", "state")
        self.queue = Gauge("tidal_serve_queue_requests", "Requests held for a worker.")
        self.window = LatencyWindow()

    def observe_request(self, status: int, seconds: float) -> None:
        self.requests.inc(label=str(status))
        self.latency.observe(seconds)
        self.window.add(seconds)

    def observe_batch(self, items: int, requests: int) -> None:
        self.batch_items.observe(items)
        self.batch_requests.observe(requests)

    def render(self) -> str:
        """The Prometheus text exposition (format 0.0.4)."""
        lines = []
        for metric in (self.requests, self.latency, self.batch_items, self.batch_requests, self.cold_starts,
                       self.cold_start_seconds, self.worker_starts, self.worker_exits, self.workers, self.queue):
            lines.append(f"# HELP {metric.name} {metric.help}")
            lines.append(f"# TYPE {metric.name} {metric.kind}")
            lines.extend(metric.samples())
        return "\n".join(lines) + "\n"
