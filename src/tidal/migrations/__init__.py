"""Alembic migrations of the store (SQLite and PostgreSQL)."""
