"""Fixtures of the sources' object store tests: moto's S3 server, fake credentials, a fresh
bucket, and a proxy counting what goes over the wire (helpers in s3_server.py)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from s3_server import Bucket, CountingProxy


@pytest.fixture
def counting_proxy(s3_server: str, bucket: Bucket, monkeypatch: pytest.MonkeyPatch) -> Iterator[CountingProxy]:
    """A proxy in front of the test server; sources built now reach ``bucket`` through it."""
    proxy = CountingProxy(s3_server)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("TIDAL_S3_ENDPOINT_URL", proxy.url)
    try:
        yield proxy
    finally:
        proxy.shutdown()
        proxy.server_close()
        thread.join()
