"""Which store a URI names, opened: the factory kept apart from the Store base so that neither
imports the other's implementations.

Example::

    store = open_store()                                   # $TIDAL_TRACKING_URI, else the embedded file
    store = open_store("postgresql://tidal@db/tidal", artifacts="s3://bucket/tidal")
"""

from __future__ import annotations

from pathlib import Path

from tidal import settings
from tidal.errors import ConfigError
from tidal.tracking.store import Store


def open_store(uri: str | None = None, *, home: Path | None = None, token: str | None = None,
               artifacts: str | None = None, s3_endpoint_url: str | None = None) -> Store:
    """The store ``uri`` names: None → ``$TIDAL_TRACKING_URI`` or the embedded SQLite file.

    ``sqlite:///path``, ``postgresql://user@host/db`` or ``http(s)://host:port`` (a tidal server,
    authenticated with ``token`` or ``$TIDAL_TOKEN``). ``artifacts`` is where a SQL store keeps
    files: a folder (default ``$TIDAL_HOME/artifacts``) or ``s3://bucket/prefix`` (at
    ``s3_endpoint_url``, default ``$TIDAL_S3_ENDPOINT_URL``).
    """
    uri = uri or settings.tracking_uri()
    if uri and uri.startswith(("http://", "https://")):
        from tidal.tracking.httpstore import HTTPStore

        return HTTPStore(uri, token=token or settings.token())
    if uri and not uri.startswith(("sqlite", "postgresql", "postgres")):
        raise ConfigError(f"unknown store URL {uri!r}; use sqlite:///path, postgresql://... or http(s)://...")
    from tidal.database import open_engine, sqlite_url
    from tidal.tracking.artifacts import open_artifact_store
    from tidal.tracking.sqlstore import SQLStore

    artifacts = artifacts or settings.artifacts_url()
    return SQLStore(open_engine(uri or sqlite_url(home)),
                    open_artifact_store(artifacts, home=home, endpoint_url=s3_endpoint_url))
