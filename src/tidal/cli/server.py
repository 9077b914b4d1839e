"""``tidal server`` (a team's tracking server) and ``tidal ui`` (the embedded store's dashboard).

Both run ``tidal.tracking.server.app.create_app`` with uvicorn. ``tidal server`` refuses to listen beyond
the loopback interface without a token: whoever reaches the port could read and write every run.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from tidal import settings
from tidal.errors import UsageError

if TYPE_CHECKING:
    from fastapi import FastAPI

DEFAULT_PORT = 8765


def server(
    store: Annotated[Optional[str], typer.Option(
        "--store", help="sqlite:///path/tidal.db or postgresql://user@host/db (default: the embedded store "
                        "under TIDAL_HOME).")] = None,
    artifacts: Annotated[Optional[str], typer.Option(
        "--artifacts", help="Where artifacts go: a folder or s3://bucket/prefix (default: TIDAL_ARTIFACTS, "
                            "else TIDAL_HOME/artifacts).")] = None,
    token_file: Annotated[Optional[Path], typer.Option(
        "--token-file", help="A file holding the token clients must send (TIDAL_TOKEN); required unless "
                             "--host is a loopback address.")] = None,
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0: every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = DEFAULT_PORT,
    s3_endpoint: Annotated[Optional[str], typer.Option(
        "--s3-endpoint", help="An S3-protocol endpoint for s3:// artifacts, e.g. http://minio:9000 (default: "
                              "TIDAL_S3_ENDPOINT_URL, else AWS).")] = None,
    max_request_size: Annotated[str, typer.Option(
        "--max-request-size", help="Largest request body (a batch of points), e.g. 16MiB.")] = "16MiB",
    max_upload_size: Annotated[str, typer.Option(
        "--max-upload-size", help="Largest artifact upload, e.g. 4GiB.")] = "4GiB",
) -> None:
    """Serve the tracking API (and the dashboard) over a store, for a team.

    Clients log to it with TIDAL_TRACKING_URI=http://HOST:PORT and TIDAL_TOKEN=<the token>.
    """
    token = read_token(token_file)
    if token is None and not is_loopback(host):
        raise UsageError(
            f"refusing to listen on {host} without a token: anyone who reaches it could read and change "
            "every run. Pass --token-file F (make one with: python -c 'import secrets; "
            "print(secrets.token_urlsafe(32))' > F), or listen on 127.0.0.1")
    listener = bind(host, port)
    url = store or _embedded_url()
    if url.startswith(("http://", "https://")):
        raise UsageError(f"--store {url}: a tidal server stores into sqlite:///... or postgresql://..., "
                         "not into another server")
    limits = {"max_request_bytes": parse_size(max_request_size, "--max-request-size"),
              "max_upload_bytes": parse_size(max_upload_size, "--max-upload-size")}
    app = _app(url, artifacts, token, s3_endpoint, **limits)
    typer.echo(f"tidal server: {_public_url(host, port)} (API docs at /docs) over {_redacted(url)}"
               f"{', token required' if token else ''}")
    serve(app, listener)


def ui(port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = DEFAULT_PORT) -> None:
    """Show the embedded store (TIDAL_HOME) in the browser, on 127.0.0.1 only."""
    listener = bind("127.0.0.1", port)
    app = _app(_embedded_url(), None, None)
    typer.echo(f"tidal ui: http://127.0.0.1:{port}/ (the API: /docs) — Ctrl+C stops it")
    serve(app, listener)


def read_token(path: Path | None) -> str | None:
    """The token in ``path`` (surrounding whitespace dropped); None without a path."""
    if path is None:
        return None
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"cannot read the token file {path}: {error}") from error
    if not token:
        raise UsageError(f"the token file {path} is empty; put a long random secret in it")
    from tidal.tracking.server.auth import check_token

    check_token(token, f"the token in {path}")
    return token


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B?|B)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def parse_size(text: str, option: str) -> int:
    """``"16MiB"``, ``"4G"``, ``"65536"`` → bytes (binary units, whatever the spelling)."""
    match = _SIZE.match(text)
    if not match:
        raise UsageError(f"{option} {text!r}: give a size like 65536, 64KiB, 16MiB or 4GiB")
    size = int(float(match[1]) * _UNITS[(match[2] or "")[:1].lower()])
    if size < 1024:
        raise UsageError(f"{option} {text!r}: at least 1KiB, or no client could send anything")
    return size


def is_loopback(host: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1: addresses only this machine can reach."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound now so a port in use is a clear error before anything starts."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        return socket.create_server((host.strip("[]"), port), family=family)
    except OSError as error:
        raise UsageError(f"cannot listen on {host}:{port} ({error.strerror or error}); "
                         "pick another --port or --host") from error


def serve(app: FastAPI, listener: socket.socket) -> None:
    """Run uvicorn on ``listener`` until Ctrl+C; tokens never reach the access log."""
    import uvicorn

    config = uvicorn.Config(app, log_level="info", ws="none", lifespan="on")  # on: the queue's dispatcher
    server = uvicorn.Server(config)
    logging.getLogger("uvicorn.access").addFilter(_HideTokens())  # after Config set logging up
    try:
        server.run(sockets=[listener])
    finally:
        app.state.store.close()


class _HideTokens(logging.Filter):
    """``/login?token=...`` is logged as ``/login?token=***``."""

    _TOKEN = re.compile(r"(token=)[^&\s]*")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(self._TOKEN.sub(r"\1***", arg) if isinstance(arg, str) else arg
                                for arg in record.args)
        return True


def _app(store_url: str, artifacts: str | None, token: str | None, s3_endpoint: str | None = None,
         **limits: int) -> FastAPI:
    from tidal.tracking.server.app import create_app
    from tidal.tracking.stores import open_store

    store = open_store(store_url, artifacts=artifacts, s3_endpoint_url=s3_endpoint)
    artifact_store: Any = getattr(store, "artifact_store", None)
    if artifact_store is not None:
        artifact_store.check()  # a wrong bucket or an unwritable folder fails now, not on the first upload
    return create_app(store, token=token, **limits)


def _embedded_url() -> str:
    from tidal.database import sqlite_url

    return sqlite_url(settings.home())


def _public_url(host: str, port: int) -> str:
    shown = socket.gethostname() if host in ("0.0.0.0", "::", "") else host
    return f"http://[{shown.strip('[]')}]:{port}/" if ":" in shown else f"http://{shown}:{port}/"


def _redacted(url: str) -> str:
    return re.sub(r"//([^:/@]+):[^@/]*@", r"//\1:***@", url)
