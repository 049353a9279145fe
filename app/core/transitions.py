"""The one place a job changes state: :func:`transition` for one job, :func:`transition_many`
for a batch (the dispatcher's claim of every job it admits in a tick).

Both check the state machine, compare-and-set the rows (``WHERE state = current``) so a change
made meanwhile by another process is never overwritten, and record a JobEvent per job, so each
job carries its own history.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, col

from app.core.errors import StaleStateError
from app.core.lease import LeadershipLost
from app.core.models import Job, JobEvent
from app.core.states import TERMINAL, JobState, check_transition
from app.core.timeutil import utcnow


def _stamps(target: JobState, now: datetime) -> dict[str, Any]:
    """The time columns a state sets when it is entered."""
    values: dict[str, Any] = {}
    if target is JobState.RUNNING:
        values["started_at"] = now
    if target in TERMINAL:
        values["finished_at"] = now
    return values


TRANSITIONS = "oppen.transitions"


def _lost_lease(session: Session, fence: Any) -> bool:
    return fence is not None and not session.execute(select(fence)).scalar()


def transition(session: Session, job: Job, target: JobState, reason: str = "",
               fence: Any = None) -> None:
    """Moves one job to ``target``. ``fence`` (the dispatcher's Lease.fence()) makes the write
    conditional on still leading. Raises InvalidTransitionError, StaleStateError, or
    LeadershipLost when the fence no longer holds."""
    current = JobState(job.state)
    check_transition(current, target)
    now = utcnow()
    values: dict[str, Any] = {"state": target.value, **_stamps(target, now)}
    if reason:
        values["reason"] = reason
    session.add(job)
    session.flush()  # pending attribute changes first, then the guarded state change
    guarded = update(Job).where(col(Job.id) == job.id).where(col(Job.state) == current.value)
    if fence is not None:
        guarded = guarded.where(fence)
    result = session.exec(  # type: ignore[call-overload]
        guarded.values(**values)
        # Only this row changed, and its new values are known: no search of the session's
        # objects and no reload (together about a third of a bulk dispatch on SQLite).
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        if _lost_lease(session, fence):
            raise LeadershipLost(f"job {job.id} not changed: the dispatcher lease was lost")
        session.refresh(job)
        raise StaleStateError(
            f"job {job.id} is {job.state} now, not {current.value}; nothing was changed"
        )
    for key, value in values.items():
        set_committed_value(job, key, value)  # what the row now holds, and not a pending change
    session.add(JobEvent(job_id=job.id, at=now, from_state=current.value, to_state=target.value,
                         reason=reason))
    session.flush()
    _count(session)


def transition_many(session: Session, job_ids: Sequence[int], current: JobState,
                    target: JobState, reason: str = "", fence: Any = None,
                    **values: Any) -> list[int]:
    """Moves every job of ``job_ids`` that is still ``current`` to ``target`` in one UPDATE,
    setting ``values`` as well (SQL expressions allowed), and records their events. Jobs that
    left ``current`` meanwhile are skipped, not overwritten. Returns the ids moved. With
    ``fence``, raises LeadershipLost (and moves nothing) once the lease is lost."""
    check_transition(current, target)
    if not job_ids:
        return []
    now = utcnow()
    columns: dict[str, Any] = {"state": target.value, **_stamps(target, now), **values}
    if reason:
        columns["reason"] = reason
    guarded = update(Job).where(col(Job.id).in_(job_ids)).where(col(Job.state) == current.value)
    if fence is not None:
        guarded = guarded.where(fence)
    moved = list(session.execute(guarded.values(**columns).returning(Job.id)).scalars().all())
    if not moved and _lost_lease(session, fence):
        raise LeadershipLost("nothing claimed: the dispatcher lease was lost")
    if moved:
        session.execute(insert(JobEvent), [
            dict(job_id=job_id, at=now, from_state=current.value, to_state=target.value,
                 reason=reason) for job_id in moved])
        _count(session)
    return moved


def _count(session: Session) -> None:
    """Notes on the session that it holds state changes to commit: they are flushed at once,
    so the session's own dirty and new sets no longer show them."""
    session.info[TRANSITIONS] = session.info.get(TRANSITIONS, 0) + 1


def transitions_pending(session: Session) -> bool:
    """Whether transitions were made in this session since it last committed (and resets)."""
    return bool(session.info.pop(TRANSITIONS, 0))
