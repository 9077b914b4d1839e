"""Fetching the file a ``{"url": ...}`` request names, in the front, within a deadline.

The front fetches, not the model worker: a URL that never answers then holds one request's
coroutine, never the worker that every other request needs. Every fetch has a connect limit,
a limit on each read, and a total deadline (``http.fetch_timeout``, within what is left of
``request_timeout``); past the deadline the request gets a 504 and the service carries on.

What each scheme must pass, besides the allow-list (:mod:`tidal.serve.allowlist`):

- ``file://``: the path is resolved, symlinks included, and must stay inside the allowing
  entry's resolved folder; it is opened without following a last symlink and without blocking
  (a FIFO must not wedge anything), and must be a regular file.
- ``http(s)://``: redirects are followed (at most ``MAX_REDIRECTS``) only to URLs the list
  allows, each hop checked again; a host is connected to by the address it was checked at,
  which must be public unless the entry that allowed the hop names that host exactly (a
  wildcard entry never reaches a private, loopback or link-local address: no SSRF).
- anything else (``s3://``, ``gs://``...): fsspec, in a thread, with botocore's connect and
  read limits for S3 (``$TIDAL_S3_ENDPOINT_URL`` as the artifact store uses it).

Every failure is a :class:`~tidal.errors.RequestError` written for the HTTP client: 403 not
allowed, 404 missing, 413 too large, 422 not a file or not reachable, 504 too slow.

Example::

    fetcher = Fetcher(AllowList(["file:///srv/media"]), max_bytes=2**20, timeout=30)
    name, content_type, content = await fetcher.fetch("file:///srv/media/a.mp4", deadline)
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import posixpath
import socket
import ssl
import stat
import time
import urllib.parse
from collections.abc import Iterable
from typing import Any

import httpcore

from tidal.errors import RequestError
from tidal.serve.allowlist import AllowedURL, AllowList, Location, locate

CONNECT_SECONDS = 10.0  # resolving and connecting to a host
READ_SECONDS = 30.0  # between two chunks of a download
MAX_REDIRECTS = 5
REDIRECTS = (301, 302, 303, 307, 308)
Fetched = tuple[str, str, bytes]  # (name, content type, content): an upload as the worker takes it


class Fetcher:
    """Fetches allowed URLs for the front: at most ``max_bytes`` each, within ``timeout`` seconds."""

    def __init__(self, allow: AllowList, max_bytes: int, timeout: float) -> None:
        self.allow = allow
        self.max_bytes = max_bytes
        self.timeout = timeout
        self._ssl: ssl.SSLContext | None = None

    async def fetch(self, url: str, deadline: float) -> Fetched:
        """The file at ``url``, by ``deadline`` (``time.monotonic()``) or within ``timeout``
        seconds, whichever comes first; RequestError for the client otherwise."""
        seconds = min(self.timeout, deadline - time.monotonic())
        if seconds <= 0:
            raise RequestError(504, f"no time was left to fetch {url} within request_timeout; retry")
        try:
            async with asyncio.timeout(seconds):
                return await self._fetch(url)
        except TimeoutError:
            raise RequestError(504, f"fetching {url} took longer than {seconds:g} s and was given up: its origin "
                               "is too slow or does not answer; retry later, or upload the file instead") from None

    async def _fetch(self, url: str) -> Fetched:
        location, entry = self.allowed(url)
        name = posixpath.basename(location.path) or url
        if location.scheme == "file":
            content = await asyncio.to_thread(read_file, location, entry, self.max_bytes, url)
            return name, "", content
        if location.scheme in ("http", "https"):
            return await self._download(url, location, entry, name)
        return name, "", await asyncio.to_thread(read_fsspec, location.scheme + url[url.index(":"):], self.max_bytes)

    def allowed(self, url: str, redirected_from: str | None = None) -> tuple[Location, AllowedURL]:
        """``url`` normalised and the entry allowing it; 403 when none does."""
        location = locate(url)
        entry = self.allow.entry_for(url) if location is not None else None
        if location is None or entry is None:
            how = f"{redirected_from} redirects to {url}, which" if redirected_from else url
            raise RequestError(403, f"{how} is not allowed: this service fetches URLs only {self.allow.describe()}; "
                               "upload the file instead, or ask for its prefix in the service's http.allow_urls")
        return location, entry

    async def _download(self, url: str, location: Location, entry: AllowedURL, name: str) -> Fetched:
        """GET ``url``, following allowed redirects, each hop's host checked where it connects."""
        for _ in range(MAX_REDIRECTS + 1):
            guard = _GuardedNetwork(private_ok=not entry.wildcard, url=url)
            async with httpcore.AsyncConnectionPool(ssl_context=self._ssl_context(), network_backend=guard) as pool:
                try:
                    status, headers, content = await self._get(pool, url, location)
                except httpcore.TimeoutException:
                    raise RequestError(504, f"{location.origin} did not answer in time (connect limit "
                                       f"{CONNECT_SECONDS:g} s, read limit {READ_SECONDS:g} s) fetching {url}; "
                                       "retry later, or upload the file instead") from None
                except (httpcore.NetworkError, httpcore.ProtocolError, OSError) as error:
                    raise RequestError(422, f"cannot fetch {url}: {location.origin} cannot be reached "
                                       f"({_reason(error)}); check the URL, or upload the file instead") from None
            if status not in REDIRECTS:
                return name, headers.get("content-type", ""), _body(url, status, content)
            target = urllib.parse.urljoin(url, headers.get("location", ""))
            location, entry = self.allowed(target, redirected_from=url)
            url, name = target, posixpath.basename(location.path) or target
        raise RequestError(422, f"cannot fetch {url}: more than {MAX_REDIRECTS} redirects; give the final URL")

    async def _get(self, pool: httpcore.AsyncConnectionPool, url: str,
                   location: Location) -> tuple[int, dict[str, str], bytes]:
        netloc = urllib.parse.urlsplit(url).netloc
        timeouts = {"connect": CONNECT_SECONDS, "read": READ_SECONDS, "write": READ_SECONDS, "pool": CONNECT_SECONDS}
        request_url = location.scheme + url[url.index(":"):]
        headers = [(b"Host", netloc.encode("idna")), (b"Accept", b"*/*"), (b"User-Agent", b"tidal-serve")]
        async with pool.stream("GET", request_url, headers=headers, extensions={"timeout": timeouts}) as response:
            received = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in response.headers}
            if response.status != 200:
                return response.status, received, b""
            declared = received.get("content-length", "")
            if declared.isdigit() and int(declared) > self.max_bytes:
                raise _too_large(url, self.max_bytes)
            return 200, received, await _read_limited(response.aiter_stream(), url, self.max_bytes)

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            import httpx

            self._ssl = httpx.create_ssl_context()
        return self._ssl


class _GuardedNetwork(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, connecting only to the checked address of a host (so a
    name cannot resolve one way when checked and another when connected to)."""

    def __init__(self, private_ok: bool, url: str) -> None:
        self.inner = httpcore.AnyIOBackend()
        self.private_ok = private_ok
        self.url = url

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        resolved = await asyncio.wait_for(loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), CONNECT_SECONDS)
        addresses = [str(info[4][0]) for info in resolved]
        private = [address for address in addresses if not public_address(address)]
        if private and not self.private_ok:
            raise RequestError(403, f"{self.url} is not allowed: its host {host} is at {private[0]}, a private, "
                               "loopback or link-local address, which a wildcard allow_urls entry never reaches; "
                               "name the host in http.allow_urls to allow it")
        return await self.inner.connect_tcp(addresses[0], port, timeout, local_address, socket_options)

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        raise RequestError(403, "unix sockets are never fetched")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def public_address(address: str) -> bool:
    """True for an address on the public internet (not private, loopback, link-local, reserved,
    multicast; an IPv4-mapped IPv6 address is judged by its IPv4 address)."""
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


async def _read_limited(chunks: Any, url: str, max_bytes: int) -> bytes:
    content = bytearray()
    async for chunk in chunks:
        content += chunk
        if len(content) > max_bytes:
            raise _too_large(url, max_bytes)
    return bytes(content)


def _body(url: str, status: int, content: bytes) -> bytes:
    if status in (404, 410):
        raise RequestError(404, f"{url} does not exist (its server answered HTTP {status}); check the URL")
    if status != 200:
        raise RequestError(422, f"cannot fetch {url}: its server answered HTTP {status}; check the URL, or "
                           "upload the file instead")
    return content


def _too_large(url: str, max_bytes: int) -> RequestError:
    return RequestError(413, f"{url} is larger than this service's limit of {max_bytes} bytes; "
                        "send a smaller file")


def _reason(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return text.split("] ", 1)[-1] if text.startswith("[Errno") else text


def read_file(location: Location, entry: AllowedURL, max_bytes: int, url: str) -> bytes:
    """A regular file inside the entry's folder, symlinks resolved (runs in a thread)."""
    folder = os.path.realpath(entry.path or "/")
    path = os.path.realpath(location.path)
    if path != folder and not path.startswith(folder.rstrip("/") + "/"):
        raise RequestError(403, f"{url} is not allowed: it leads (through a symbolic link) to {path}, outside the "
                           f"allowed folder {folder}")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise RequestError(404, f"{url} does not exist; check the URL") from None
    except PermissionError:
        raise RequestError(403, f"{url} cannot be read by this service (permission denied)") from None
    except OSError as error:
        raise RequestError(422, f"cannot read {url}: {_reason(error)}") from None
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            what = "a folder" if stat.S_ISDIR(status.st_mode) else "not a regular file (a pipe, a device or a socket)"
            raise RequestError(422, f"{url} is {what}; name a file")
        if status.st_size > max_bytes:
            raise _too_large(url, max_bytes)
        with os.fdopen(os.dup(fd), "rb") as file:
            return file.read(max_bytes + 1)
    finally:
        os.close(fd)


def read_fsspec(url: str, max_bytes: int) -> bytes:
    """An object through fsspec (S3 with connect and read limits); runs in a thread."""
    import fsspec

    from tidal.settings import s3_endpoint_url

    options: dict[str, Any] = {}
    if url.startswith("s3://"):
        options["config_kwargs"] = {"connect_timeout": CONNECT_SECONDS, "read_timeout": READ_SECONDS,
                                    "retries": {"max_attempts": 2}}
        if endpoint := s3_endpoint_url():
            options["endpoint_url"] = endpoint
    try:
        with fsspec.open(url, "rb", **options) as file:
            content: bytes = file.read(max_bytes + 1)
    except FileNotFoundError:
        raise RequestError(404, f"{url} does not exist; check the URL") from None
    except IsADirectoryError:
        raise RequestError(422, f"{url} is a folder; name a file") from None
    except PermissionError:
        raise RequestError(403, f"{url} cannot be read by this service (access denied)") from None
    except ImportError as error:
        raise RequestError(501, f"fetching {url} needs a package this server lacks: {error}") from None
    except Exception as error:
        raise RequestError(422, f"cannot fetch {url}: {type(error).__name__}: {_reason(error)}") from None
    if len(content) > max_bytes:
        raise _too_large(url, max_bytes)
    return content
