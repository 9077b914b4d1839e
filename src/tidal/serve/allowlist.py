"""The URL allow-list: which URLs a service may fetch for ``{"url": ...}`` requests.

An entry is a URL prefix: ``s3://bucket/prefix``, ``s3://*`` (any bucket),
``file:///folder``, ``https://host[:port]/path``. A URL is allowed when an entry has its
scheme (in any case: ``HTTP://`` is ``http://``), its host (in any case, default ports
dropped) or ``*``, and a path at or under the entry's path. A URL with user info, a query, a
fragment or a ``..`` segment is never allowed. ``file://localhost/path`` is ``file:///path``.

What the prefix cannot say, the fetcher (:mod:`tidal.serve.fetcher`) checks at fetch time:
a ``file://`` path is resolved (symlinks included) and must stay inside the entry's resolved
folder; an ``http(s)`` host must connect to a public address unless the entry that allowed it
names that host exactly (a wildcard entry never reaches a private, loopback or link-local
address); each redirect hop is checked against the list again.

Example::

    allow = AllowList(["s3://uploads", "file:///srv/media"])
    allow.entry_for("S3://uploads/a.mp4")        # AllowedURL("s3", "uploads", None, "")
    allow.entry_for("file:///srv/media/../etc")   # None
"""

from __future__ import annotations

import posixpath
import re
import urllib.parse
from dataclasses import dataclass

from tidal.errors import ConfigError

DEFAULT_PORTS = {"http": 80, "https": 443}
ANY_HOST = "*"
EXAMPLES = "write e.g. s3://bucket/prefix, s3://* (any bucket), file:///folder or https://host/path"


@dataclass(frozen=True)
class Location:
    """A URL taken apart and normalised: lower-case scheme and host, no default port, the
    path unquoted (``""`` host for ``file://``)."""

    scheme: str
    host: str
    port: int | None
    path: str

    @property
    def origin(self) -> str:
        return f"{self.scheme}://{self.host}" + (f":{self.port}" if self.port is not None else "")


@dataclass(frozen=True)
class AllowedURL:
    """One allow-list entry: a scheme, a bucket or host (``*``: any), a port, a path prefix."""

    scheme: str
    host: str
    port: int | None
    path: str

    @property
    def wildcard(self) -> bool:
        return self.host == ANY_HOST

    def allows(self, location: Location) -> bool:
        if location.scheme != self.scheme:
            return False
        if not self.wildcard and (location.host, location.port) != (self.host, self.port):
            return False
        prefix = self.path.rstrip("/")
        return not prefix or location.path == prefix or location.path.startswith(prefix + "/")


class AllowList:
    """The parsed entries of ``http.allow_urls``; ConfigError naming the entry when one is wrong."""

    def __init__(self, prefixes: list[str], where: str = "allow_urls") -> None:
        self.prefixes = list(prefixes)
        self.entries = [parse_allowed_url(prefix, f"{where}[{index}]") for index, prefix in enumerate(prefixes)]

    def entry_for(self, url: str) -> AllowedURL | None:
        """The entry allowing ``url``, or None (never for a URL that :func:`locate` refuses)."""
        location = locate(url)
        if location is None:
            return None
        return next((entry for entry in self.entries if entry.allows(location)), None)

    def describe(self) -> str:
        """The list for an error message."""
        return f"under {', '.join(self.prefixes)}" if self.prefixes else "at all (its allow_urls list is empty)"


def locate(url: str) -> Location | None:
    """``url`` normalised, or None when it can never be allowed (no scheme or host where one is
    needed, user info, a query, a fragment, a bad port, a ``..`` segment)."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    path = urllib.parse.unquote(parts.path)
    if not scheme or "://" not in url or parts.query or parts.fragment or "@" in parts.netloc:
        return None
    if ".." in re.split(r"[/\\]", path) or "\x00" in path:
        return None
    host = (parts.hostname or "").lower()
    if scheme == "file":
        if host not in ("", "localhost") or port is not None:
            return None
        host = ""
    elif not host:
        return None
    return Location(scheme, host, None if port == DEFAULT_PORTS.get(scheme) else port, path)


def parse_allowed_url(prefix: str, where: str = "allow_urls") -> AllowedURL:
    """Parse an allow-list entry such as ``s3://uploads/videos`` or ``file:///srv/media``."""
    parts = urllib.parse.urlsplit(prefix)
    if not parts.scheme or "://" not in prefix or parts.query or parts.fragment or "@" in parts.netloc:
        raise ConfigError(f"{where}: {prefix!r} is not a URL prefix; {EXAMPLES}")
    scheme = parts.scheme.lower()
    if scheme != "file" and not parts.netloc:
        raise ConfigError(f"{where}: {prefix!r} names no bucket or host; write {scheme}://bucket "
                          f"(or {scheme}://* to allow any)")
    if scheme == "file" and parts.netloc not in ("", "localhost"):
        raise ConfigError(f"{where}: {prefix!r} names a host; a file:// prefix names a folder of this machine, "
                          "e.g. file:///srv/media")
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"{where}: {prefix!r} has a port that is not a number; {EXAMPLES}") from None
    host = "" if scheme == "file" else ANY_HOST if parts.netloc == ANY_HOST else (parts.hostname or "").lower()
    path = posixpath.normpath(urllib.parse.unquote(parts.path)) if parts.path else ""
    return AllowedURL(scheme, host, None if port == DEFAULT_PORTS.get(scheme) else port, path)


def url_allowed(url: str, allowed: list[str]) -> bool:
    """True when ``url`` lies under one of the ``allowed`` prefixes (``..`` never passes)."""
    return AllowList(allowed).entry_for(url) is not None
