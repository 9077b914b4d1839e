"""An S3-protocol server for the sources' object store tests: moto's, on 127.0.0.1.

moto runs in its own process (like the artifact tests' server), so a source reads it over real
HTTP. :class:`CountingProxy` sits in front of it when a test must know what went over the wire:
which requests a listing made, how many bytes a decode fetched. The fixtures are in conftest.py.
"""

from __future__ import annotations

import http.client
import http.server
import subprocess
import sys
import threading
from dataclasses import dataclass
from typing import Any

import pytest

MOTO_SERVER = """
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
import sys
sys.stdin.read()  # serve until the test session closes our stdin
"""
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
FOREIGN_VARIABLES = (
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "TIDAL_S3_ENDPOINT_URL",
)


def start_moto(environment: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], str]:
    """moto's server in a child process: the process and its URL."""
    pytest.importorskip("moto.server", reason="moto[server] is needed for the S3 tests: pip install 'moto[server]'")
    process = subprocess.Popen(
        [sys.executable, "-c", MOTO_SERVER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=environment,
    )
    assert process.stdout is not None
    port = process.stdout.readline().strip()
    if not port:
        process.kill()
        pytest.fail("moto's server did not start: run the MOTO_SERVER script by hand to see why")
    return process, f"http://127.0.0.1:{port}"


@dataclass
class Bucket:
    """A fresh bucket on the test server, and a client to change its objects directly."""

    name: str
    client: Any

    def url(self, key: str) -> str:
        return f"s3://{self.name}/{key}"

    def put(self, key: str, data: bytes) -> str:
        self.client.put_object(Bucket=self.name, Key=key, Body=data)
        return self.url(key)


@dataclass(frozen=True)
class Exchange:
    """One request through the proxy: its method, path and query, and the body bytes answered."""

    method: str
    path: str
    answered: int


class CountingProxy(http.server.ThreadingHTTPServer):
    """Forwards every request to ``upstream`` and records it: what the wire really carried."""

    daemon_threads = True

    def __init__(self, upstream: str) -> None:
        super().__init__(("127.0.0.1", 0), _Forward)
        self.upstream = upstream.removeprefix("http://")
        self.exchanges: list[Exchange] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def fetched(self, method: str = "GET") -> int:
        """Body bytes answered to requests of ``method``."""
        with self.lock:
            return sum(exchange.answered for exchange in self.exchanges if exchange.method == method)


class _Forward(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as s3fs's client expects
    server: CountingProxy

    def _forward(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        upstream = http.client.HTTPConnection(self.server.upstream, timeout=60)
        upstream.request(self.command, self.path, body=body, headers=dict(self.headers))
        response = upstream.getresponse()
        answer = response.read()
        upstream.close()
        with self.server.lock:
            self.server.exchanges.append(Exchange(self.command, self.path, len(answer)))
        self.send_response(response.status)
        for name, value in response.getheaders():
            if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(name, value)
        length = response.getheader("Content-Length") if self.command == "HEAD" else None
        self.send_header("Content-Length", length or str(len(answer)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(answer)

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _forward

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the exchanges are recorded, not printed."""


