"""An index in queue order (priority high first, then FIFO), so listing and admission read
the first jobs off the index instead of sorting the whole queue. It replaces the narrower
(state, priority, id) index, which it covers, so submitting costs no more.

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


def downgrade() -> None:
    op.create_index("ix_jobs_state_priority", "jobs", ["state", "priority", "id"])
    op.drop_index("ix_jobs_queue_order", table_name="jobs")
