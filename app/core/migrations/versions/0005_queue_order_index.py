"""Indexes for a long queue. One in queue order (priority high first, then FIFO), so listing
and admission read the first jobs off the index instead of sorting the whole queue; one that
covers the budget sums, so a submission's budget check never reads whole rows. They replace
the narrower (state, priority, id) and (state) indexes, which they cover, so submitting
updates no more indexes than before.

Revision ID: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_jobs_queue_order", "jobs",
                    ["state", sa.text("priority DESC"), "created_at", "id"])
    op.drop_index("ix_jobs_state_priority", table_name="jobs")
    op.create_index("ix_jobs_state_budget", "jobs", ["state", "created_at", "team", "project",
                                                     "estimated_cost_micros", "cost_micros"])
    op.drop_index("ix_jobs_state", table_name="jobs")


def downgrade() -> None:
    op.create_index("ix_jobs_state", "jobs", ["state"])
    op.drop_index("ix_jobs_state_budget", table_name="jobs")
    op.create_index("ix_jobs_state_priority", "jobs", ["state", "priority", "id"])
    op.drop_index("ix_jobs_queue_order", table_name="jobs")
