"""A real HTTP origin for the fetch tests: ``http.server`` on 127.0.0.1 (a free port), in a
thread of the test process, serving a few files, redirects, and a path that never answers.

Paths: ``/files/NAME`` (the ``files`` given), ``/redirect/QUOTED`` (302 to the URL
``urllib.parse.quote(URL, safe="")``), ``/missing``
(404), ``/broken`` (500), ``/stall`` (headers never sent, until the origin stops: at most
``STALL_SECONDS``). ``origin.hits`` counts requests by path.
"""

from __future__ import annotations

import threading
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STALL_SECONDS = 30.0  # a stalled answer ends by itself: no request loop outlives the test


@dataclass
class Origin:
    url: str
    files: dict[str, bytes]
    stop: threading.Event = field(default_factory=threading.Event)
    hits: Counter[str] = field(default_factory=Counter)


def _handler(origin: Origin) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urllib.parse.urlsplit(self.path)
            origin.hits[parts.path] += 1
            if parts.path == "/stall":
                origin.stop.wait(STALL_SECONDS)
                return
            if parts.path.startswith("/redirect/"):
                self._answer(302, b"", {"Location": urllib.parse.unquote(parts.path[10:])})
            elif parts.path.startswith("/files/") and parts.path[7:] in origin.files:
                self._answer(200, origin.files[parts.path[7:]], {"Content-Type": "video/mp4"})
            else:
                self._answer(500 if parts.path == "/broken" else 404, b"no")

        def _answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

    return Handler


def redirect(origin: str, target: str) -> str:
    """The URL at ``origin`` that redirects to ``target``."""
    return f"{origin}/redirect/{urllib.parse.quote(target, safe='')}"


@contextmanager
def serving_origin(files: dict[str, bytes]) -> Iterator[Origin]:
    """An origin on a free port of 127.0.0.1 until the block ends."""
    origin = Origin("", files)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(origin))
    origin.url = f"http://127.0.0.1:{server.server_address[1]}"
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="test-origin", daemon=True)
    thread.start()
    try:
        yield origin
    finally:
        origin.stop.set()
        server.shutdown()
        server.server_close()
