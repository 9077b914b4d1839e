"""Fixtures of the sources' object store tests: moto's S3 server, fake credentials, a fresh
bucket, and a proxy counting what goes over the wire (helpers in s3_server.py)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from s3_server import FAKE_CREDENTIALS, FOREIGN_VARIABLES, Bucket, CountingProxy, start_moto


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """The URL of an S3-protocol server that accepts any credentials."""
    process, url = start_moto()
    with process:
        yield url
        process.terminate()


@pytest.fixture
def aws_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials, and nothing from the developer's own AWS setup."""
    for variable, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(variable, value)
    for variable in FOREIGN_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))


@pytest.fixture
def bucket(s3_server: str, aws_environment: None, monkeypatch: pytest.MonkeyPatch) -> Bucket:
    """An empty bucket; ``TIDAL_S3_ENDPOINT_URL`` points at its server."""
    import boto3

    monkeypatch.setenv("TIDAL_S3_ENDPOINT_URL", s3_server)
    client = boto3.client("s3", endpoint_url=s3_server)
    name = f"tidal-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    return Bucket(name, client)


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
