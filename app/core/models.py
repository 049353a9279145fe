"""Database tables (SQLModel). Column types work on both SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, DateTime, Index
from sqlmodel import Field, SQLModel

from app.core.timeutil import utcnow


def _utc_column(nullable: bool = True) -> Any:
    return Column(DateTime(timezone=True), nullable=nullable)


def _empty_list() -> list[Any]:
    """A default factory that pydantic can inspect cheaply. Pydantic 2.14 inspects a default
    factory's signature on every instance, and for the builtin `list` that means parsing its
    text signature: 190 us per Job, a third of what creating one costs."""
    return []


class Job(SQLModel, table=True):
    __tablename__ = "jobs"

    id: int | None = Field(default=None, primary_key=True)
    name: str
    state: str = Field(default="queued")
    priority_class: str = "normal"
    priority: int = 100
    config: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    cpus: float = 1.0
    memory_mb: int = 1024
    gpus: int = 0
    created_at: datetime = Field(default_factory=utcnow, sa_column=_utc_column(False))
    started_at: datetime | None = Field(default=None, sa_column=_utc_column())
    finished_at: datetime | None = Field(default=None, sa_column=_utc_column())
    attempts: int = 0
    executor_ref: str | None = None
    exit_code: int | None = None
    reason: str | None = None
    mlflow_run_id: str | None = None
    cancel_requested: bool = False
    # Who the job belongs to (budgets and API access are scoped by these).
    team: str = "default"
    project: str = "default"
    # Retries of infrastructure failures, with exponential backoff until not_before.
    max_attempts: int = 3
    not_before: datetime | None = Field(default=None, sa_column=_utc_column())
    # Past this much running time the job is stopped and failed as a timeout.
    max_runtime_s: float | None = None
    # Estimated at submission; money in integer micro-dollars so sums never drift.
    estimated_duration_s: float | None = None
    estimated_cost_micros: int | None = Field(default=None, sa_column=Column(BigInteger))
    # Live progress read from MLflow by the dispatcher, for ETAs.
    progress_step: int | None = Field(default=None, sa_column=Column(BigInteger))
    progress_sps: float | None = None
    # When progress last moved (stalled jobs are flagged), the recent reward curve (for the
    # dashboard's sparkline) and the final evaluation against the best heuristic.
    progress_at: datetime | None = Field(default=None, sa_column=_utc_column())
    reward_curve: list[float] = Field(default_factory=_empty_list,
                                      sa_column=Column(JSON, nullable=False, server_default="[]"))
    eval_ratio: float | None = None
    # Run on spot capacity (cheaper, interruptible).
    spot: bool = False
    # What the job's attempts have cost so far, priced when each attempt ends.
    cost_micros: int = Field(default=0, sa_column=Column(BigInteger, nullable=False,
                                                         server_default="0"))
    # The submitter's key for this submission: a retried POST with the same key (per team)
    # finds this job instead of queueing a second.
    idempotency_key: str | None = None
    # The step the current attempt resumed from (its trainer reports it when it starts);
    # None for an attempt that began at step 0.
    resumed_from_step: int | None = Field(default=None, sa_column=Column(BigInteger))
    # When the current attempt's Kubernetes Job is suspended by Kueue: its place among the
    # pending workloads of its queue (from Kueue's visibility API); None when not known.
    kueue_position: int | None = None
    # A sweep's trial: the study it belongs to and the trial's number in it (None otherwise).
    sweep_id: int | None = None
    trial_number: int | None = None


# Queue order (priority high first, then FIFO) read straight off an index, so listing and
# admission never sort the whole queue.
Index("ix_jobs_queue_order", Job.state, Job.priority.desc(),  # type: ignore[attr-defined]
      Job.created_at, Job.id)
# Covers the budget sums (by state, period, team or project): a submission's budget check
# reads this index, never the rows with their configs.
Index("ix_jobs_state_budget", Job.state, Job.created_at, Job.team, Job.project,
      Job.estimated_cost_micros, Job.cost_micros)
# One job per (team, idempotency key); jobs without a key (NULL) never collide.
Index("ux_jobs_team_idempotency_key", Job.team, Job.idempotency_key, unique=True)
# A trial is queued once: the sweep's step finds its job by this, and a second try is refused.
Index("ux_jobs_sweep_trial", Job.sweep_id, Job.trial_number, unique=True)


class JobEvent(SQLModel, table=True):
    """One state transition: the job's history, with time and reason."""

    __tablename__ = "job_events"

    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="jobs.id", index=True)
    at: datetime = Field(default_factory=utcnow, sa_column=_utc_column(False))
    from_state: str | None = None
    to_state: str
    reason: str = ""


class JobAttempt(SQLModel, table=True):
    """One ended attempt of a job: when it ran (the process's own start and exit), how it
    ended, where it resumed from and what it cost. The attempt under way is the job's row."""

    __tablename__ = "job_attempts"

    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="jobs.id", index=True)
    number: int
    started_at: datetime | None = Field(default=None, sa_column=_utc_column())
    ended_at: datetime | None = Field(default=None, sa_column=_utc_column())
    # succeeded | failed | infrastructure | preempted | timeout | cancelled | budget_exhausted
    # | pruned,
    # or suspended (Kueue took its quota back; the attempt goes on when Kueue admits it again)
    outcome: str
    reason: str = ""
    resumed_from_step: int | None = Field(default=None, sa_column=Column(BigInteger))
    cost_micros: int = Field(default=0, sa_column=Column(BigInteger, nullable=False,
                                                         server_default="0"))


class DispatcherLease(SQLModel, table=True):
    """A single row: who leads dispatching, until when."""

    __tablename__ = "dispatcher_lease"

    name: str = Field(primary_key=True)
    holder: str
    expires_at: datetime = Field(sa_column=_utc_column(False))
    heartbeat_at: datetime = Field(sa_column=_utc_column(False))
    # The fencing token: raised by one on every change of holder, never on a renewal. Every
    # state write and launch of a dispatcher names the epoch it leads in, and is refused once
    # another has taken over.
    epoch: int = Field(default=0, sa_column=Column(BigInteger, nullable=False,
                                                   server_default="0"))
    # Why the leader's last tick was degraded (a job whose step raised, admission failing);
    # None when it went well.
    degraded: str | None = None


class Budget(SQLModel, table=True):
    """A spending limit on a scope (everything, a team or a project) over a period."""

    __tablename__ = "budgets"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True)
    scope: str = "global"  # global | team | project
    scope_value: str = "*"  # the team or project name; "*" for global
    period: str = "monthly"  # weekly | monthly | custom
    starts_at: datetime | None = Field(default=None, sa_column=_utc_column())  # custom only
    ends_at: datetime | None = Field(default=None, sa_column=_utc_column())  # custom only
    limit_micros: int = Field(sa_column=Column(BigInteger, nullable=False))
    hard: bool = True
    thresholds: list[float] = Field(default_factory=lambda: [0.5, 0.8, 1.0],
                                    sa_column=Column(JSON, nullable=False))
    # Bumped by every admission decision against this budget: the row lock that serialises
    # concurrent submitters, so they cannot together commit more than the limit.
    version: int = 0
    created_at: datetime = Field(default_factory=utcnow, sa_column=_utc_column(False))


class ApiToken(SQLModel, table=True):
    """A bearer token for the API server. Only its SHA-256 is kept: the token is shown once,
    when created. Tokens are 256 random bits, so a fast hash is as safe as a slow one."""

    __tablename__ = "api_tokens"

    id: int | None = Field(default=None, primary_key=True)
    name: str
    team: str
    role: str  # viewer | submitter | admin
    token_hash: str = Field(unique=True)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_utc_column(False))
    last_used_at: datetime | None = Field(default=None, sa_column=_utc_column())
    revoked_at: datetime | None = Field(default=None, sa_column=_utc_column())


class AdmissionPause(SQLModel, table=True):
    """A single row while admission is paused: the dispatcher starts nothing new (running
    jobs go on) until someone resumes it."""

    __tablename__ = "admission_pause"

    name: str = Field(default="admission", primary_key=True)
    since: datetime = Field(sa_column=_utc_column(False))
    by: str = ""
    reason: str = ""


class Sweep(SQLModel, table=True):
    """A hyperparameter search: an Optuna study (kept by Optuna's RDB storage in this same
    database, named ``study_name``) whose trials the leading dispatcher queues as jobs."""

    __tablename__ = "sweeps"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True)
    study_name: str = Field(unique=True)
    # running (asking for trials) | stopped (by a person) | completed | capped (the cost
    # cap leaves no room for another trial)
    state: str = "running"
    team: str = "default"
    project: str = "default"
    priority_class: str = "normal"
    # The training options every trial starts from, and the search space over them.
    base_config: dict[str, Any] = Field(default_factory=dict,
                                        sa_column=Column(JSON, nullable=False))
    space: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # Each trial's resources, as a job submission's.
    cpus: float = 1.0
    memory_mb: int = 1024
    gpus: int = 0
    sampler: str = "tpe"
    pruner: str = "median"
    seed: int | None = None
    objective: str = "mean_bounded_slowdown"
    direction: str = "minimize"
    n_trials: int = 10
    parallelism: int = 2
    # The hard cap, a budget of scope "sweep" named after the sweep (budget_name).
    max_cost_micros: int | None = Field(default=None, sa_column=Column(BigInteger))
    budget_name: str | None = None
    mlflow_run_id: str | None = None
    reason: str = ""
    created_at: datetime = Field(default_factory=utcnow, sa_column=_utc_column(False))
    finished_at: datetime | None = Field(default=None, sa_column=_utc_column())
