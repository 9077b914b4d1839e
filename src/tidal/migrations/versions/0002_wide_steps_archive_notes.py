"""64-bit metric and image steps, 64-bit job totals; runs can be archived and carry notes

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 15:05:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

# SQLite stores every integer in up to 64 bits whatever the declared type: only PostgreSQL needs
# its columns widened (a step of 3_000_000_000 was "integer out of range" there).
_WIDENED = (("metrics", "step"), ("images", "step"), ("jobs", "total_items"))


def upgrade() -> None:
    if op.get_context().dialect.name != "sqlite":
        for table, column in _WIDENED:
            op.alter_column(table, column, type_=sa.BigInteger(), existing_type=sa.Integer())
    with op.batch_alter_table('runs') as batch_op:
        batch_op.add_column(sa.Column('archived_at', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('notes', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('runs') as batch_op:
        batch_op.drop_column('notes')
        batch_op.drop_column('archived_at')
    if op.get_context().dialect.name != "sqlite":
        for table, column in _WIDENED:
            op.alter_column(table, column, type_=sa.Integer(), existing_type=sa.BigInteger())
