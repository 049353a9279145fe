"""Progress detail for the dashboard: when progress last moved, the recent reward curve, and
the final evaluation against the best heuristic.

Revision ID: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("progress_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("reward_curve", sa.JSON(), nullable=False,
                                   server_default="[]"))
        batch.add_column(sa.Column("eval_ratio", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("eval_ratio")
        batch.drop_column("reward_curve")
        batch.drop_column("progress_at")
