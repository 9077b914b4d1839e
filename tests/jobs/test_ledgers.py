"""Every ledger backend against the shared suite: the embedded sqlite3 fast path, SQLAlchemy over
SQLite and over a real PostgreSQL server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from ledger_suite import LedgerSuite

from pgserver import POSTGRES_URL, needs_postgres
from tidal.database import open_engine, sqlite_url
from tidal.jobs.ledger import Ledger
from tidal.jobs.sql_ledger import SQLLedger
from tidal.jobs.sqlite_ledger import SQLiteLedger
from tidal.tracking.artifacts import open_artifact_store
from tidal.tracking.sqlstore import SQLStore
from tidal.tracking.store import Store, open_store


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
