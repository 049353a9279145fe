"""The persistent priority queue: submit, list, show, cancel, retry and every state change.

All state changes go through :func:`transition`, which checks the state machine and records a
:class:`JobEvent`, so each job carries its own history.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from app.core.errors import ConfigError, NotFoundError, StaleStateError
from app.core.models import Job, JobEvent
from app.core.priority import priority_value
from app.core.states import TERMINAL, JobState, check_transition
from app.core.timeutil import utcnow
from app.training.config import TrainConfig


def transition(session: Session, job: Job, target: JobState, reason: str = "") -> None:
    """The one place a job changes state.

    Checks the state machine, then compare-and-sets the row (``WHERE state = current``) so a
    change made meanwhile by another process is never overwritten, and records a JobEvent.
    Raises InvalidTransitionError or StaleStateError.
    """
    current = JobState(job.state)
    check_transition(current, target)
    now = utcnow()
    values: dict[str, Any] = {"state": target.value}
    if reason:
        values["reason"] = reason
    if target is JobState.RUNNING:
        values["started_at"] = now
    if target in TERMINAL:
        values["finished_at"] = now
    session.add(job)
    session.flush()  # pending attribute changes first, then the guarded state change
    result = session.exec(  # type: ignore[call-overload]
        update(Job).where(col(Job.id) == job.id).where(col(Job.state) == current.value)
        .values(**values)
    )
    if result.rowcount != 1:
        session.refresh(job)
        raise StaleStateError(
            f"job {job.id} is {job.state} now, not {current.value}; nothing was changed"
        )
    session.add(JobEvent(job_id=job.id, at=now, from_state=current.value, to_state=target.value,
                         reason=reason))
    session.flush()
    session.refresh(job)


def queue_order() -> tuple[Any, ...]:
    """Higher priority first; FIFO (by id) within a class."""
    return (col(Job.priority).desc(), col(Job.id).asc())


@dataclass(frozen=True)
class JobView:
    """A job as shown to people: its row, queue position and history."""

    job: Job
    position: int | None
    events: list[JobEvent]

    def to_dict(self) -> dict[str, Any]:
        j = self.job
        return {
            "id": j.id,
            "name": j.name,
            "state": j.state,
            "priority_class": j.priority_class,
            "priority": j.priority,
            "position": self.position,
            "cpus": j.cpus,
            "memory_mb": j.memory_mb,
            "gpus": j.gpus,
            "created_at": j.created_at.isoformat() if j.created_at else None,
            "started_at": j.started_at.isoformat() if j.started_at else None,
            "finished_at": j.finished_at.isoformat() if j.finished_at else None,
            "attempts": j.attempts,
            "exit_code": j.exit_code,
            "reason": j.reason,
            "mlflow_run_id": j.mlflow_run_id,
            "config": j.config,
            "events": [
                {"at": e.at.isoformat(), "from": e.from_state, "to": e.to_state, "reason": e.reason}
                for e in self.events
            ],
        }


def _require(session: Session, job_id: int) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFoundError(f"no job with id {job_id}")
    return job


class QueueService:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def submit(
        self,
        name: str,
        config: dict[str, Any] | None = None,
        priority: str = "normal",
        cpus: float = 1.0,
        memory_mb: int = 1024,
        gpus: int = 0,
    ) -> Job:
        if not name or not name.strip():
            raise ConfigError("a job needs a non-empty name")
        if cpus <= 0 or memory_mb <= 0 or gpus < 0:
            raise ConfigError("cpus and memory_mb must be positive and gpus not negative")
        train_config = TrainConfig.from_dict(config or {})  # validate before anything is stored
        job = Job(
            name=name.strip(),
            priority_class=priority,
            priority=priority_value(priority),
            config=train_config.to_dict(),
            cpus=cpus,
            memory_mb=memory_mb,
            gpus=gpus,
        )
        with Session(self.engine) as s:
            s.add(job)
            s.flush()
            s.add(JobEvent(job_id=job.id, from_state=None, to_state=JobState.QUEUED.value,
                           reason="submitted"))
            s.commit()
            s.refresh(job)
        return job

    def get(self, job_id: int) -> Job:
        with Session(self.engine) as s:
            job = _require(s, job_id)
            return job

    def list(self, states: Iterable[str] | None = None, limit: int = 200) -> list[JobView]:
        with Session(self.engine) as s:
            stmt = select(Job)
            if states:
                stmt = stmt.where(col(Job.state).in_(list(states)))
            jobs = s.exec(stmt.order_by(*queue_order()).limit(limit)).all()
            positions = self._positions(s)
            return [JobView(j, positions.get(j.id), []) for j in jobs]

    def show(self, job_id: int) -> JobView:
        with Session(self.engine) as s:
            job = _require(s, job_id)
            events = s.exec(
                select(JobEvent).where(JobEvent.job_id == job_id).order_by(col(JobEvent.id))
            ).all()
            return JobView(job, self._positions(s).get(job_id), list(events))

    def _positions(self, s: Session) -> dict[int, int]:
        ids = s.exec(
            select(Job.id).where(Job.state == JobState.QUEUED.value).order_by(*queue_order())
        ).all()
        return {job_id: i + 1 for i, job_id in enumerate(ids)}

    def cancel(self, job_id: int, reason: str = "cancelled by user") -> Job:
        """Queued jobs are cancelled at once; running ones are marked and the dispatcher stops
        them on its next tick."""
        with Session(self.engine) as s:
            job = _require(s, job_id)
            state = JobState(job.state)
            if state in TERMINAL:
                raise ConfigError(f"job {job_id} already {state.value}")
            if state is JobState.QUEUED:
                transition(s, job, JobState.CANCELLED, reason)
            else:
                job.reason = f"cancel requested: {reason}"
                job.cancel_requested = True
                s.add(job)
            s.commit()
            s.refresh(job)
            return job

    def retry(self, job_id: int) -> Job:
        with Session(self.engine) as s:
            job = _require(s, job_id)
            transition(s, job, JobState.QUEUED, "retried by user")
            job.exit_code = None
            job.executor_ref = None
            s.commit()
            s.refresh(job)
            return job

    def record_run(self, job_id: int, run_id: str) -> None:
        """The training process reports which MLflow run holds its metrics."""
        with Session(self.engine) as s:
            job = _require(s, job_id)
            job.mlflow_run_id = run_id
            s.add(job)
            s.commit()
