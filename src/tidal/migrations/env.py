"""Alembic environment: run with a connection handed over by ``tidal.database.upgrade``."""

from __future__ import annotations

from alembic import context

from tidal.tracking.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # `alembic` command line (for writing new revisions): use the configured URL
    from sqlalchemy import create_engine

    engine = create_engine(context.config.get_main_option("sqlalchemy.url") or "sqlite://")
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()
else:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
