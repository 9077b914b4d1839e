"""The serving Backend: where a service's model workers live, behind one front.

The front (:mod:`tidal.serve.app`) reads a request into a
:class:`~tidal.serve.payload.Payload` and hands it to its backend; the backend answers with a
:class:`Reply` (status, JSON bytes, headers). How workers are started, scaled and fed is the
backend's business: :class:`~tidal.serve.local.LocalBackend` runs them as local processes
(the default); a Ray Serve backend can plug into the same front. Every backend passes the
shared suite in ``tests/serve/backend_suite.py``.

A backend is used on one event loop::

    backend = LocalBackend(config, info)
    await backend.start()
    reply = await backend.predict(Payload("json", {"a": 1}))
    await backend.stop()
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from tidal.serve.metrics import ServeMetrics
from tidal.serve.payload import Payload

LOG = logging.getLogger("tidal.serve")


@dataclass
class Reply:
    """An HTTP answer: status, JSON body bytes, extra headers."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def error_reply(status: int, message: str, headers: dict[str, str] | None = None, log: bool = False,
                detail: Any = None) -> Reply:
    """A JSON error (``detail``: per-field problems, when given); a 5xx carries an error id,
    also written to the log with the message when ``log``."""
    body: dict[str, Any] = {"error": message}
    if detail is not None:
        body["detail"] = detail
    if status >= 500:
        body["error_id"] = uuid.uuid4().hex[:12]
        if log:
            LOG.error("error %s: %s", body["error_id"], message)
    return Reply(status, json.dumps(body).encode(), headers or {})


class Backend:
    """Runs a service's processor in workers and answers predict requests.

    ``metrics`` is the service's :class:`~tidal.serve.metrics.ServeMetrics`: the front counts
    requests into it, the backend its workers, batches and cold starts.
    """

    metrics: ServeMetrics

    async def start(self) -> None:
        """Begin serving: start the periodic checks, and the ``min_workers`` workers (a backend
        scaled to zero starts none until the first request)."""
        raise NotImplementedError

    async def stop(self) -> None:
        """Stop serving: answer held requests with 503, let workers finish what they hold, stop
        them (their memory and GPU memory released). Requests after this get 503."""
        raise NotImplementedError

    async def predict(self, payload: Payload) -> Reply:
        """The processor's answer to one request, held while a worker starts; 503 when too many
        wait, 504 past ``request_timeout`` (counted from ``payload.received``), 502 when the
        worker died, 500 when the processor raised, 4xx when the request was refused."""
        raise NotImplementedError

    def status(self) -> dict[str, Any]:
        """What ``/readyz`` shows: ``ready``, ``state`` (``warm``, ``starting`` or ``idle (scaled
        to zero)``), ``workers`` (each with ``number``, ``pid``, ``state``), ``waiting``,
        ``min_workers``, ``max_workers``, ``idle_timeout``, ``last_setup_error``."""
        raise NotImplementedError

    def scale(self, min_workers: int | None = None, max_workers: int | None = None) -> None:
        """Change the bounds of the number of workers while serving (None keeps one): workers
        start at once up to ``min_workers``; idle ones above ``max_workers`` stop. Raises
        ConfigError for bounds that cannot hold."""
        raise NotImplementedError

    def render_metrics(self) -> str:
        """``metrics`` in the Prometheus text format, with the workers' current states."""
        raise NotImplementedError
