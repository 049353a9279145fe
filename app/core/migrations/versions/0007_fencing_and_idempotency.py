"""The lease's fencing token (an epoch raised on every change of dispatcher) and the leader's
last tick verdict (degraded, and why), and the submitter's idempotency key on jobs, unique per
team.

Revision ID: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dispatcher_lease") as batch:
        batch.add_column(sa.Column("epoch", sa.BigInteger(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("degraded", sa.String(), nullable=True))
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("idempotency_key", sa.String(), nullable=True))
    op.create_index("ux_jobs_team_idempotency_key", "jobs", ["team", "idempotency_key"],
                    unique=True)


def downgrade() -> None:
    op.drop_index("ux_jobs_team_idempotency_key", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("idempotency_key")
    with op.batch_alter_table("dispatcher_lease") as batch:
        batch.drop_column("degraded")
        batch.drop_column("epoch")
