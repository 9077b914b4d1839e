"""The migrations build exactly the tables the code reads and writes (tidal.tracking.schema)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from pgserver import POSTGRES_URL, needs_postgres
from tidal.database import HEAD_REVISION, open_engine, sqlite_url
from tidal.tracking import schema


def differences(url: str, compare_type: bool) -> list[Any]:
    engine = open_engine(url)  # migrates to the head revision
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": compare_type})
            return list(compare_metadata(context, schema.metadata))
    finally:
        engine.dispose()


def test_a_new_sqlite_store_has_the_schema(tmp_path: Path) -> None:
    # SQLite stores any integer in 64 bits whatever its declared type: types are not compared there
    assert differences(sqlite_url(tmp_path), compare_type=False) == []


@needs_postgres
def test_the_postgresql_store_has_the_schema_with_its_types() -> None:
    assert differences(POSTGRES_URL, compare_type=True) == []


def test_the_head_revision_is_the_last_migration() -> None:
    versions = Path(__file__).parents[2] / "src" / "tidal" / "migrations" / "versions"
    assert max(path.name.split("_")[0] for path in versions.glob("0*.py")) == HEAD_REVISION
