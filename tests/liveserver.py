"""One live-server helper for every test: a real uvicorn server on 127.0.0.1, in a thread of the
test process, over any ASGI app (the tracking server, a service's front...).

API::

    with serving(app) as live:                 # started, and stopped (joined) on exit
        httpx.get(live.url + "/healthz")       # live.url == f"http://127.0.0.1:{live.port}"
    live = start_server(app, port=None, delay=0.0, wait=True)   # the same, stopped by live.stop()
    free_port()                                # a port of 127.0.0.1 that was free a moment ago
    sqlite_store(home), postgres_store(home)   # real stores for a server (PostgreSQL: tests/pgserver.py)
    TOKEN                                      # a token for servers that require one

``delay`` starts uvicorn that many seconds later (clients that must retry until it is up);
``wait=False`` returns at once.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from pgserver import POSTGRES_URL
from tidal.database import sqlite_url
from tidal.tracking.store import Store
from tidal.tracking.stores import open_store

TOKEN = "test-token-0123456789"


def sqlite_store(home: Path) -> Store:
    return open_store(sqlite_url(home), home=home, artifacts=str(home / "artifacts"))


def postgres_store(home: Path) -> Store:
    return open_store(POSTGRES_URL, home=home, artifacts=str(home / "artifacts"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class LiveServer:
    """uvicorn serving an app in a thread; ``url`` is ``http://127.0.0.1:<port>``."""

    url: str
    port: int
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=60)  # a model service tears its workers down first


def start_server(app: Any, port: int | None = None, delay: float = 0.0, wait: bool = True,
                 lifespan: str = "off") -> LiveServer:
    """Serve ``app`` on 127.0.0.1:``port`` (a free one by default), after ``delay`` seconds;
    ``lifespan="on"`` for an app that starts things at startup (a model service's backend)."""
    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan=lifespan, ws="none",
                            http="h11", timeout_graceful_shutdown=1, access_log=False)
    server = uvicorn.Server(config)

    def serve() -> None:
        time.sleep(delay)
        server.run()

    thread = threading.Thread(target=serve, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    live = LiveServer(f"http://127.0.0.1:{port}", port, server, thread)
    deadline = time.monotonic() + 10 + delay
    while wait and not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"uvicorn did not start on port {port}")
        time.sleep(0.01)
    return live


@contextmanager
def serving(app: Any, **options: Any) -> Iterator[LiveServer]:
    """``start_server(app, **options)`` for the length of a ``with`` block."""
    live = start_server(app, **options)
    try:
        yield live
    finally:
        live.stop()


def wait_for(condition: Callable[[], Any], seconds: float, message: str) -> Any:
    """Poll ``condition`` until it returns something true (which is returned) or fail with ``message``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(message)
