"""A real front for the serve tests: uvicorn on 127.0.0.1 (a free port) in a thread of the test
process, real worker processes behind it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from liveserver import serving as live_server
from liveserver import wait_for  # noqa: F401  (the serve tests import it from here)
from tidal.children import alive as pid_alive  # noqa: F401  (the serve tests import it from here)
from tidal.serve.app import create_app
from tidal.serve.backend import Backend
from tidal.serve.config import ServiceConfig, parse_service

HERE = Path(__file__).parent


@dataclass
class Front:
    url: str
    backend: Backend
    client: httpx.Client

    def predict(self, value: Any = None, **kwargs: Any) -> httpx.Response:
        if value is not None:
            kwargs["json"] = value
        return self.client.post(f"{self.url}/v1/predict", **kwargs)

    def predict_all(self, values: list[Any], timeout: float = 30.0) -> list[httpx.Response]:
        """Send the values at once, each from its own thread and connection."""

        def post(value: Any) -> httpx.Response:
            return httpx.post(f"{self.url}/v1/predict", json=value, timeout=timeout)

        with ThreadPoolExecutor(len(values)) as pool:
            return list(pool.map(post, values))

    def status(self) -> dict[str, Any]:
        return self.client.get(f"{self.url}/readyz").json()  # type: ignore[no-any-return]

    def worker_pids(self) -> list[int]:
        return [worker["pid"] for worker in self.status()["workers"]]

    def metric(self, name: str) -> float:
        """A sample of /metrics, e.g. ``tidal_serve_worker_exits_total{reason="idle"}`` (0 if absent)."""
        text = self.client.get(f"{self.url}/metrics").text
        match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
        return float(match.group(1)) if match else 0.0


@contextmanager
def running_front(processor: dict[str, Any], track: bool = False, media: dict[str, Any] | None = None,
                  **http: Any) -> Iterator[Front]:
    """Serve ``processor`` (a spec from serveprocessors) with ``http`` settings until the block ends."""
    data = {"processor": processor, "imports": ["serveprocessors"], "http": http, "media": media or {},
            "name": "test-service"}
    with serving(parse_service(data, "test service", HERE), track) as front:
        yield front


@contextmanager
def serving(config: ServiceConfig, track: bool = False) -> Iterator[Front]:
    """Serve a service config on a free port of 127.0.0.1 until the block ends."""
    app = create_app(config, track=track)
    with live_server(app, lifespan="on") as live, httpx.Client(timeout=60) as client:
        yield Front(live.url, app.state.backend, client)



def echo(**kwargs: Any) -> dict[str, Any]:
    return {"serveprocessors.Echo": kwargs}
