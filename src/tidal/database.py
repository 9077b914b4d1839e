"""Opening the store's database: SQLite under TIDAL_HOME (default) or PostgreSQL by URL.

The schema is owned by Alembic migrations (``tidal/migrations``); opening a database brings it
to the latest revision first. A fast path checks the revision with plain SQL, so commands that
find the schema current never import Alembic.

SQLite runs in WAL mode: readers (``tidal jobs show``, the dashboard) look while a job writes;
with ``synchronous=NORMAL`` a power loss can drop the last transactions but never corrupts the
file, and a dropped transaction only means its batch is done again on resume.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tidal.errors import StoreError
from tidal.settings import DB_FILENAME, home

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

HEAD_REVISION = "0004"
MIGRATIONS = Path(__file__).parent / "migrations"


def sqlite_url(state_home: Path | None = None) -> str:
    return f"sqlite:///{(state_home or home()) / DB_FILENAME}"


def connect(state_home: Path | None = None, create: bool = True) -> sqlite3.Connection:
    """A plain sqlite3 connection to the embedded store (the ledger's fast path), schema current."""
    folder = state_home or home()
    path = folder / DB_FILENAME
    if not create and not path.exists():
        raise StoreError(f"no tidal state in {folder}: run `tidal map` first or set TIDAL_HOME")
    return connect_file(path)


def connect_file(path: Path) -> sqlite3.Connection:
    """A plain sqlite3 connection (autocommit, WAL) to the SQLite store at ``path``, schema current."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(path, timeout=30.0, isolation_level=None)
        _tune(connection)
        if _revision(connection) != HEAD_REVISION:
            upgrade(open_engine(f"sqlite:///{path}"))
    except (OSError, sqlite3.Error) as error:
        raise StoreError(
            f"cannot use {path} as tidal's state ({error}); make {path.parent} writable "
            "or point TIDAL_HOME at a writable folder"
        ) from error
    return connection


def _tune(connection: Any) -> None:
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("PRAGMA busy_timeout=30000")


def _revision(connection: sqlite3.Connection) -> str | None:
    try:
        row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.OperationalError:  # no table yet: a new database
        return None
    return str(row[0]) if row else None


def open_engine(url: str) -> Engine:
    """A SQLAlchemy engine for ``url`` (sqlite:///... or postgresql://...), schema current."""
    from sqlalchemy import create_engine, event
    from sqlalchemy.exc import SQLAlchemyError

    url = _with_driver(url)
    try:
        if url.startswith("sqlite"):
            _make_folder(url)
            engine = create_engine(url, connect_args={"timeout": 30.0})
            event.listen(engine, "connect", lambda connection, _: _tune(connection))
        else:
            engine = create_engine(url, pool_pre_ping=True)
        if _engine_revision(engine) != HEAD_REVISION:
            upgrade(engine)
    except SQLAlchemyError as error:
        raise StoreError(f"cannot open the store at {_redacted(url)}: {_first_line(error)}; "
                         "check that the server runs and the URL is right") from error
    return engine


def _engine_revision(engine: Engine) -> str | None:
    """The schema's revision, read with plain SQL (importing Alembic costs a few tenths of a second)."""
    from sqlalchemy import inspect, text

    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def _make_folder(url: str) -> None:
    from sqlalchemy.engine import make_url

    database = make_url(url).database
    if database and database != ":memory:":
        try:
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StoreError(f"cannot create the folder of {database} ({error}); "
                             "make it writable or point TIDAL_HOME elsewhere") from error


def upgrade(engine: Engine) -> None:
    """Run the Alembic migrations up to the latest revision."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def _with_driver(url: str) -> str:
    """``postgresql://`` means psycopg 3 here (SQLAlchemy would pick psycopg2)."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


class Guarded:
    """``with Guarded(engine, begin=True) as connection:`` — a transaction (or a plain connection)
    whose database errors become StoreError naming the store. With ``expect_conflicts`` an
    IntegrityError passes through: the callers that expect one (a repeated id) turn it into their
    own answer."""

    def __init__(self, engine: Engine, begin: bool, expect_conflicts: bool = False) -> None:
        self.engine = engine
        self.begin = begin
        self.expect_conflicts = expect_conflicts

    def __enter__(self) -> Connection:
        from sqlalchemy.exc import IntegrityError, SQLAlchemyError

        # kept for __exit__, which may run at interpreter shutdown (a stream closed late), when
        # nothing can be imported any more
        self.errors = (IntegrityError, SQLAlchemyError)
        try:
            self.context = self.engine.begin() if self.begin else self.engine.connect()
            return self.context.__enter__()  # type: ignore[no-any-return]
        except SQLAlchemyError as error:
            raise StoreError(f"cannot reach the store {_redacted(str(self.engine.url))}: {_first_line(error)};"
                             " check that the database server runs and the URL is right") from error

    def __exit__(self, kind: Any, error: Any, trace: Any) -> None:
        IntegrityError, SQLAlchemyError = self.errors
        self.context.__exit__(kind, error, trace)
        if isinstance(error, IntegrityError) and self.expect_conflicts:
            return
        if isinstance(error, SQLAlchemyError):
            raise StoreError(f"the store {_redacted(str(self.engine.url))} failed: {_first_line(error)}") from error
