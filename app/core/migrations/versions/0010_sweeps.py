"""Sweeps (hyperparameter searches as Optuna studies) and the trial a job runs for one.

Optuna's own tables are made by Optuna's storage in this database when the first sweep is
created (app/sweeps/storage.py), not here: their schema is Optuna's to version.

Revision ID: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sweeps",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(), nullable=False, unique=True),
        sa.Column("study_name", sa.String(), nullable=False, unique=True),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("team", sa.String(), nullable=False),
        sa.Column("project", sa.String(), nullable=False),
        sa.Column("priority_class", sa.String(), nullable=False),
        sa.Column("base_config", sa.JSON(), nullable=False),
        sa.Column("space", sa.JSON(), nullable=False),
        sa.Column("cpus", sa.Float(), nullable=False),
        sa.Column("memory_mb", sa.Integer(), nullable=False),
        sa.Column("gpus", sa.Integer(), nullable=False),
        sa.Column("sampler", sa.String(), nullable=False),
        sa.Column("pruner", sa.String(), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=True),
        sa.Column("objective", sa.String(), nullable=False),
        sa.Column("direction", sa.String(), nullable=False),
        sa.Column("n_trials", sa.Integer(), nullable=False),
        sa.Column("parallelism", sa.Integer(), nullable=False),
        sa.Column("max_cost_micros", sa.BigInteger(), nullable=True),
        sa.Column("budget_name", sa.String(), nullable=True),
        sa.Column("mlflow_run_id", sa.String(), nullable=True),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    )
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("sweep_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("trial_number", sa.Integer(), nullable=True))
    op.create_index("ux_jobs_sweep_trial", "jobs", ["sweep_id", "trial_number"], unique=True)


def downgrade() -> None:
    op.drop_index("ux_jobs_sweep_trial", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("trial_number")
        batch.drop_column("sweep_id")
    op.drop_table("sweeps")
