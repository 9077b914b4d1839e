"""The queue: runs submitted to Ray, waiting for resources or watched while Ray runs them

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 16:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'queue',
        sa.Column('run_id', sa.String(32), primary_key=True),
        sa.Column('priority', sa.Integer(), nullable=False, server_default='0'),
        sa.Column('status', sa.String(16), nullable=False),
        sa.Column('address', sa.Text(), nullable=False),
        sa.Column('spec', sa.Text(), nullable=False),
        sa.Column('reason', sa.Text()),
        sa.Column('ray_job_id', sa.String(128)),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.Column('submitted_at', sa.Float()),
        sa.Column('ended_at', sa.Float()),
        sa.Column('attempts', sa.Integer(), nullable=False, server_default='0'),
    )
    op.create_index('queue_status_priority', 'queue', ['status', 'priority', 'created_at'], unique=False)


def downgrade() -> None:
    op.drop_index('queue_status_priority', table_name='queue')
    op.drop_table('queue')
