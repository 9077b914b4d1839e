"""The SQL store on the embedded SQLite file and on a real PostgreSQL server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from store_suite import QueueSuite, RunQuerySuite, StoreSuite

from pgserver import POSTGRES_URL, needs_postgres
from tidal.tracking.store import Store
from tidal.tracking.stores import open_store


@pytest.fixture
def project() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


class TestSQLiteStore(StoreSuite, RunQuerySuite, QueueSuite):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Store]:
        store = open_store(None, home=tmp_path / "home")
        yield store
        store.close()


@needs_postgres
class TestPostgresStore(StoreSuite, RunQuerySuite, QueueSuite):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Store]:
        store = open_store(POSTGRES_URL, home=tmp_path / "home")
        yield store
        store.close()


def test_unreachable_server_is_a_clear_error(tmp_path: Path) -> None:
    from tidal.errors import StoreError

    with pytest.raises(StoreError, match="cannot open the store at postgresql"):
        open_store("postgresql://postgres@127.0.0.1:9/none", home=tmp_path)
