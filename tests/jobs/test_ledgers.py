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
