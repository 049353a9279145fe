"""Reading the queue for admission: queue order, the candidates admission sees, the plan over
the queue (in chunks, until nothing more can start), and what running jobs hold. Shared by
the dispatcher, which acts on the plan, and QueueService, which explains it (positions,
pending reasons, estimated starts)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from app.core.admission import (
    AdmissionCheck,
    Candidate,
    Limits,
    Planner,
    Usage,
    admission_order,
)
from app.core.models import Job
from app.core.states import JobState
from app.core.timeutil import as_utc, utcnow

# Jobs the dispatcher watches: launched or being launched, running or held by the cluster.
ACTIVE_STATES = (JobState.DISPATCHING.value, JobState.WAITING.value, JobState.RUNNING.value)
# Jobs that hold Oppen's capacity. A job Kueue keeps suspended holds none: the cluster's
# quota decides when it runs.
HOLDING_STATES = (JobState.DISPATCHING.value, JobState.RUNNING.value)
# Queued jobs are read in queue order this many at a time until nothing more can start.
CHUNK = 256


def queue_order() -> tuple[Any, ...]:
    """Higher priority first; FIFO (submission time, then id) within a class, as admission."""
    return (col(Job.priority).desc(), col(Job.created_at).asc(), col(Job.id).asc())


def ahead_of(job: Job) -> Any:
    """Queued jobs before ``job`` in queue order (higher priority, or the same and earlier)."""
    created, ident = col(Job.created_at), col(Job.id)
    return (col(Job.priority) > job.priority) | (
        (col(Job.priority) == job.priority)
        & ((created < job.created_at) | ((created == job.created_at) & (ident < job.id))))


def candidate_of(row: Any) -> Candidate:
    return Candidate(id=row.id, priority_class=row.priority_class, priority=row.priority,
                     created_at=as_utc(row.created_at), cpus=row.cpus, memory_mb=row.memory_mb,
                     gpus=row.gpus, not_before=as_utc(row.not_before) if row.not_before else None,
                     team=row.team, project=row.project,
                     estimated_cost_micros=row.estimated_cost_micros,
                     estimated_duration_s=row.estimated_duration_s, attempts=row.attempts,
                     sweep_id=row.sweep_id)


CANDIDATE_COLUMNS = (Job.id, Job.priority_class, Job.priority, Job.created_at, Job.cpus,
                     Job.memory_mb, Job.gpus, Job.not_before, Job.team, Job.project,
                     Job.estimated_cost_micros, Job.estimated_duration_s, Job.attempts,
                     Job.sweep_id)


def queued_candidates(session: Session, limit: int | None = None,
                      offset: int = 0) -> list[Candidate]:
    """Queued jobs in queue order, reading only the columns admission needs."""
    stmt = (select(*CANDIDATE_COLUMNS)  # type: ignore[call-overload]
            .where(Job.state == JobState.QUEUED.value).order_by(*queue_order()))
    if limit is not None:
        stmt = stmt.offset(offset).limit(limit)
    return [candidate_of(r) for r in session.exec(stmt).all()]


def plan_queue(session: Session, usage: Usage, limits: Limits, now: datetime,
               checks: Sequence[AdmissionCheck] = (), upto: int | None = None) -> Planner:
    """Runs admission over the queue. Without aging, SQL order is admission order, so the
    queue is read in chunks: until nothing more can start, or (``upto``) until that many
    jobs are placed. With aging, every queued job is read and ordered here."""
    planner = Planner(usage, limits, now, checks)
    if limits.aging_per_hour > 0:
        planner.feed(admission_order(queued_candidates(session), now, limits.aging_per_hour))
        return planner
    offset = 0
    while True:
        enough = planner.saturated if upto is None else len(planner.plan.order) >= upto
        if enough:
            return planner
        size = CHUNK if upto is None else max(CHUNK, upto - offset)
        chunk = queued_candidates(session, size, offset)
        planner.feed(chunk)
        offset += len(chunk)
        if len(chunk) < size:
            return planner


def active_usage(session: Session) -> tuple[Usage, list[tuple[Job, float]]]:
    """What running jobs hold, and each one's estimated remaining seconds."""
    usage = Usage()
    remaining: list[tuple[Job, float]] = []
    now = utcnow()
    for job in session.exec(select(Job).where(col(Job.state).in_(HOLDING_STATES))).all():
        usage.add(candidate_of(job))
        remaining.append((job, remaining_seconds(job, now)))
    return usage, remaining


def remaining_seconds(job: Job, now: datetime) -> float:
    """From live progress when the job reports it, else from the submission estimate."""
    total = int(job.config.get("total_timesteps", 0))
    if job.progress_step is not None and job.progress_sps and job.progress_sps > 0:
        return max(0.0, (total - job.progress_step) / job.progress_sps)
    started = as_utc(job.started_at) if job.started_at else now
    return max(0.0, (job.estimated_duration_s or 0.0) - (now - started).total_seconds())
