"""Every ledger backend against the shared suite: the embedded sqlite3 fast path, SQLAlchemy over
SQLite and over a real PostgreSQL server, and a tidal server (real uvicorn on 127.0.0.1) over each."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from ledger_suite import LedgerSuite

from liveserver import TOKEN, postgres_store, sqlite_store, start_server
from pgserver import POSTGRES_URL, needs_postgres
from tidal.database import open_engine, sqlite_url
from tidal.jobs.http_ledger import HTTPLedger
from tidal.jobs.ledger import Ledger
from tidal.jobs.sql_ledger import SQLLedger
from tidal.jobs.sqlite_ledger import SQLiteLedger
from tidal.tracking.artifacts import open_artifact_store
from tidal.tracking.httpstore import HTTPStore
from tidal.tracking.server.app import create_app
from tidal.tracking.sqlstore import SQLStore
from tidal.tracking.store import Store
from tidal.tracking.stores import open_store


class TestSQLiteLedger(LedgerSuite):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Store]:
        store = open_store(sqlite_url(tmp_path), home=tmp_path)
        assert isinstance(store.ledger("probe"), SQLiteLedger)
        yield store
        store.close()


class _SQLAlchemyOnSQLite(SQLStore):
    """The SQL store with the SQLAlchemy ledger on SQLite (the embedded store picks sqlite3)."""

    def ledger(self, job_id: str) -> Ledger:
        return SQLLedger(self.engine, job_id)


class TestSQLLedgerOnSQLite(LedgerSuite):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Store]:
        store = _SQLAlchemyOnSQLite(open_engine(sqlite_url(tmp_path)), open_artifact_store(None, home=tmp_path))
        yield store
        store.close()


@needs_postgres
class TestPostgresLedger(LedgerSuite):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Store]:
        store = open_store(POSTGRES_URL, home=tmp_path)
        assert isinstance(store.ledger("probe"), SQLLedger)
        yield store
        store.close()


def _served(backing: Store) -> Iterator[Store]:
    server = start_server(create_app(backing, token=TOKEN))
    client = HTTPStore(server.url, token=TOKEN, retries=2, backoff=0.05)
    assert isinstance(client.ledger("probe"), HTTPLedger)
    yield client
    client.close()
    server.stop()
    backing.close()


class TestHTTPLedgerOverSQLite(LedgerSuite):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Store]:
        yield from _served(sqlite_store(tmp_path))


@needs_postgres
class TestHTTPLedgerOverPostgres(LedgerSuite):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Store]:
        yield from _served(postgres_store(tmp_path))


def test_a_message_larger_than_a_request_is_sent_in_parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Results of a batch past the server's request limit arrive whole: the client splits the
    message (rows first, the partition's end last) instead of getting a 413 forever."""
    import json

    from ledger_suite import new_job_id

    from tidal.engines.base import BatchMessage, Row
    from tidal.jobs import http_ledger

    monkeypatch.setattr(http_ledger, "GROUP_BYTES", 6_000)
    backing = sqlite_store(tmp_path)
    server = start_server(create_app(backing, token=TOKEN, max_request_bytes=16_384))
    client = HTTPStore(server.url, token=TOKEN, retries=1)
    try:
        job_id = new_job_id()
        ledger = client.ledger(job_id)
        ledger.register("big", {}, None)
        rows = [Row(job_id, "p0", f"k{i:03d}", "done", None, i, "{}", json.dumps({"blob": "x" * 1_000}), None)
                for i in range(60)]  # about 61 kB in one message
        ledger.record(BatchMessage("p0", rows, ("done", None), 0))
        ledger.close()
        assert backing.get_job(job_id)["done"] == 60
        assert backing.get_job(job_id)["partitions_done"] == 1
        assert [row["key"] for row in backing.results(job_id)] == [f"k{i:03d}" for i in range(60)]
    finally:
        client.close()
        server.stop()
        backing.close()
