"""The queue service on both backends: SQLite (embedded) and a real PostgreSQL server."""

from __future__ import annotations

import pytest
from sqlmodel import Session

from app.core.errors import ConfigError, InvalidTransitionError, NotFoundError, StaleStateError
from app.core.models import Job
from app.core.queue import QueueService
from app.core.states import JobState
from app.core.timeutil import as_utc
from app.core.transitions import transition


def test_priority_order_then_fifo_with_positions(queue: QueueService) -> None:
    a = queue.submit("a", priority="background")
    b = queue.submit("b", priority="normal")
    c = queue.submit("c", priority="urgent")
    d = queue.submit("d", priority="normal")
    views = queue.list(["queued"])
    assert [v.job.id for v in views] == [c.id, b.id, d.id, a.id]
    assert [v.position for v in views] == [1, 2, 3, 4]
    assert queue.show(a.id).position == 4
    assert [p.job.priority for p in views] == [1000, 100, 100, 10]


def test_submit_validates_before_storing(queue: QueueService) -> None:
    with pytest.raises(ConfigError, match="unknown training option"):
        queue.submit("x", {"learning_rate": 1})
    with pytest.raises(ConfigError, match="priority"):
        queue.submit("x", priority="vip")
    with pytest.raises(ConfigError, match="total_timesteps"):
        queue.submit("x", {"total_timesteps": 0})
    with pytest.raises(ConfigError, match="name"):
        queue.submit("  ")
    assert queue.list() == []  # nothing half-stored


def test_history_records_every_transition(queue: QueueService) -> None:
    job = queue.submit("h")
    with Session(queue.engine) as s:
        row = s.get(Job, job.id)
        transition(s, row, JobState.DISPATCHING, "admitted")
        transition(s, row, JobState.RUNNING, "launched")
        transition(s, row, JobState.FAILED, "exit code 3")
        # transition() sets what it wrote on the job instead of reloading it: those values
        # must be what the row holds, and not pending changes a later flush would write again.
        assert not s.dirty
        seen = (row.state, row.reason, as_utc(row.started_at), as_utc(row.finished_at))
        s.commit()
    stored = queue.get(job.id)
    assert seen == (stored.state, stored.reason, as_utc(stored.started_at),
                    as_utc(stored.finished_at))
    assert seen[:2] == ("failed", "exit code 3")
    retried = queue.resume(job.id)
    assert retried.state == "queued"
    events = queue.show(job.id).events
    assert [(e.from_state, e.to_state) for e in events] == [
        (None, "queued"), ("queued", "dispatching"), ("dispatching", "running"),
        ("running", "failed"), ("failed", "queued")]
    assert events[3].reason == "exit code 3"
    assert all(e.at.tzinfo is not None or e.at is not None for e in events)


def test_illegal_transitions_are_errors(queue: QueueService) -> None:
    job = queue.submit("i")
    with Session(queue.engine) as s:
        row = s.get(Job, job.id)
        with pytest.raises(InvalidTransitionError, match="queued job cannot become succeeded"):
            transition(s, row, JobState.SUCCEEDED)
    with pytest.raises(InvalidTransitionError):
        queue.resume(job.id)  # only failed, cancelled and budget-stopped jobs resume
    assert queue.get(job.id).state == "queued"


def test_stale_state_is_never_overwritten(queue: QueueService) -> None:
    job = queue.submit("race")
    with Session(queue.engine) as s:
        stale = s.get(Job, job.id)  # read while queued
        queue.cancel(job.id)  # another process cancels meanwhile
        with pytest.raises(StaleStateError):
            transition(s, stale, JobState.DISPATCHING)
    assert queue.get(job.id).state == "cancelled"


def test_cancel_queued_and_missing(queue: QueueService) -> None:
    job = queue.submit("c")
    assert queue.cancel(job.id).state == "cancelled"
    with pytest.raises(InvalidTransitionError, match="already cancelled"):
        queue.cancel(job.id)
    with pytest.raises(NotFoundError, match="no job with id 999"):
        queue.show(999)
