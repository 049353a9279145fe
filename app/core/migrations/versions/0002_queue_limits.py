"""Ownership, retries with backoff, time limits, estimates and live progress on jobs.

Revision ID: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

COLUMNS = [
    sa.Column("team", sa.String(), nullable=False, server_default="default"),
    sa.Column("project", sa.String(), nullable=False, server_default="default"),
    sa.Column("max_attempts", sa.Integer(), nullable=False, server_default="3"),
    sa.Column("not_before", sa.DateTime(timezone=True), nullable=True),
    sa.Column("max_runtime_s", sa.Float(), nullable=True),
    sa.Column("estimated_duration_s", sa.Float(), nullable=True),
    sa.Column("estimated_cost_micros", sa.BigInteger(), nullable=True),
    sa.Column("progress_step", sa.BigInteger(), nullable=True),
    sa.Column("progress_sps", sa.Float(), nullable=True),
]


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        for column in COLUMNS:
            batch.add_column(column)


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        for column in reversed(COLUMNS):
            batch.drop_column(column.name)
