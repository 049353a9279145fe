"""Admission rules (pure) and the queue features built on them: pending reasons, ETAs,
quotas, aging, batches, priority changes, bad input, migrations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import inspect
from sqlmodel import Session

from app.core.admission import (
    Candidate,
    Limits,
    PendingReason,
    Usage,
    estimate_starts,
    plan_admission,
)
from app.core.errors import ConfigError, InvalidTransitionError, NotFoundError
from app.core.executors.base import ExecStatus, Phase
from app.core.failures import FailureKind, backoff_until, classify
from app.core.models import Job
from app.core.queue import BatchError, QueueService

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def cand(i: int, cls: str = "normal", gpus: int = 0, cpus: float = 1.0, age_h: float = 0.0,
         not_before: datetime | None = None, attempts: int = 0) -> Candidate:
    value = {"urgent": 1000, "normal": 100, "background": 10}[cls]
    return Candidate(id=i, priority_class=cls, priority=value,
                     created_at=NOW - timedelta(hours=age_h, seconds=-i), cpus=cpus,
                     memory_mb=1024, gpus=gpus, not_before=not_before, attempts=attempts)


def test_priority_then_fifo_and_the_concurrency_limit() -> None:
    plan = plan_admission([cand(1, "background"), cand(2), cand(3, "urgent"), cand(4)],
                          Usage(), Limits(max_concurrent=2), NOW)
    assert plan.order == [3, 2, 4, 1]
    assert plan.admitted == [3, 2]
    assert plan.pending[4].reason is PendingReason.CONCURRENCY
    assert plan.pending[4].detail == "2 of 2 jobs running"


def test_total_quota_holds_the_line_class_quota_does_not() -> None:
    limits = Limits(max_concurrent=10, max_gpus=2, class_gpu_quota={"background": 1})
    usage = Usage()
    plan = plan_admission([cand(1, "urgent", gpus=2), cand(2, gpus=1), cand(3, cpus=1)],
                          usage, limits, NOW)
    assert plan.admitted == [1]
    assert plan.pending[2].reason is PendingReason.QUOTA
    assert "needs 1 GPU, 0 of 2 free" in plan.pending[2].detail
    # Job 3 needs no GPU but waits behind job 2, so large jobs are not starved.
    assert plan.pending[3].reason is PendingReason.AHEAD
    plan = plan_admission([cand(4, "background", gpus=1), cand(5, "background", gpus=1),
                           cand(6, "background")], Usage(), limits, NOW)
    assert plan.admitted == [4, 6]
    assert plan.pending[5].reason is PendingReason.CLASS_QUOTA
    assert usage.gpus == 2  # the snapshot was updated in memory while deciding


def test_backoff_and_scheduled_starts_wait_without_blocking_others() -> None:
    later = NOW + timedelta(seconds=30)
    plan = plan_admission([cand(1, "urgent", not_before=later, attempts=1),
                           cand(3, "urgent", not_before=later), cand(2)], Usage(), Limits(), NOW)
    assert plan.admitted == [2]
    assert plan.pending[1].reason is PendingReason.BACKOFF
    assert plan.pending[3].reason is PendingReason.SCHEDULED


def test_aging_lifts_long_waiting_background_work_up_to_urgent() -> None:
    old = cand(1, "background", age_h=10)
    fresh = cand(2, "normal")
    assert plan_admission([old, fresh], Usage(), Limits(max_concurrent=1), NOW).admitted == [2]
    aged = plan_admission([old, fresh], Usage(), Limits(max_concurrent=1, aging_per_hour=10),
                          NOW)
    assert aged.admitted == [1]  # 10 + 10/h x 10 h = 110 > 100
    capped = plan_admission([cand(3, "background", age_h=1000), cand(4, "urgent")], Usage(),
                            Limits(max_concurrent=1, aging_per_hour=10), NOW)
    assert capped.admitted == [3]  # capped at urgent's 1000, then FIFO: the older one


class BudgetOf:
    """A budget check as the costs service plugs in: a cap on committed micro-dollars."""

    def __init__(self, cap: int) -> None:
        self.cap, self.committed = cap, 0

    def refuse(self, c: Candidate) -> str | None:
        cost = c.estimated_cost_micros or 0
        return None if self.committed + cost <= self.cap else "over the team budget"

    def admit(self, c: Candidate) -> None:
        self.committed += c.estimated_cost_micros or 0


def test_admission_checks_count_what_earlier_admissions_commit() -> None:
    jobs = [Candidate(i, "normal", 100, NOW + timedelta(seconds=i), 1, 1, 0,
                      estimated_cost_micros=400) for i in range(1, 4)]
    plan = plan_admission(jobs, Usage(), Limits(max_concurrent=10), NOW, [BudgetOf(1000)])
    assert plan.admitted == [1, 2]
    assert plan.pending[3].reason is PendingReason.BUDGET


def test_estimated_starts_fill_the_earliest_free_slot() -> None:
    starts = estimate_starts([100.0, 30.0], [(1, 50.0), (2, 10.0), (3, 5.0)], slots=2)
    assert starts == {1: 30.0, 2: 80.0, 3: 90.0}
    assert estimate_starts([], [(1, 5.0)], slots=3) == {1: 0.0}


@pytest.mark.parametrize("status,kind", [
    (ExecStatus(Phase.EXITED, 2), FailureKind.USER),
    (ExecStatus(Phase.EXITED, 1, "Traceback"), FailureKind.USER),
    (ExecStatus(Phase.EXITED, -9, "killed by signal 9"), FailureKind.INFRASTRUCTURE),
    (ExecStatus(Phase.EXITED, 137, "OOMKilled"), FailureKind.INFRASTRUCTURE),
    (ExecStatus(Phase.EXITED, None, "Evicted: low on memory"), FailureKind.PREEMPTION),
    (ExecStatus(Phase.LOST), FailureKind.INFRASTRUCTURE),
    (ExecStatus(Phase.TIMEOUT, None, "ran past 60 s"), FailureKind.TIMEOUT),
])
def test_failure_classification(status: ExecStatus, kind: FailureKind) -> None:
    assert classify(status).kind is kind


def test_backoff_doubles_and_is_capped() -> None:
    delays = [(backoff_until(NOW, n) - NOW).total_seconds() for n in (1, 2, 3, 10)]
    assert delays == [30.0, 60.0, 120.0, 1800.0]


# --- the queue service, on SQLite and PostgreSQL (the `queue` fixture) ------------------


def test_list_explains_every_waiting_job(queue: QueueService) -> None:
    queue.limits = Limits(max_concurrent=1, max_gpus=1)
    a = queue.submit("a", gpus=1)
    b = queue.submit("b", gpus=1)
    c = queue.submit("c", priority="urgent")
    views = {v.job.id: v for v in queue.list(["queued"])}
    assert views[c.id].position == 1 and views[a.id].position == 2
    assert views[c.id].pending.reason is PendingReason.NEXT_TICK
    assert views[a.id].pending.reason is PendingReason.CONCURRENCY
    assert views[b.id].pending.reason is PendingReason.CONCURRENCY
    # Estimated starts follow the order, one slot at a time.
    assert views[c.id].eta_start <= views[a.id].eta_start <= views[b.id].eta_start
    d = queue.show(b.id).to_dict()
    assert d["pending_reason"] == "concurrency-limit" and d["eta_start"]
    assert float(d["estimated_cost_usd"]) > 0 and d["estimated_duration_s"] > 0


def test_batch_is_all_or_nothing_with_per_item_errors(queue: QueueService) -> None:
    before = queue.counts()
    items = [{"name": "ok"}, {"name": "bad prio", "priority": "asap"},
             {"name": "neg", "cpus": -2}, {"name": "cfg", "config": {"lr": "fast"}},
             {"nme": "typo"}, "not a table"]
    with pytest.raises(BatchError) as info:
        queue.submit_batch(items)
    assert [e["index"] for e in info.value.errors] == [1, 2, 3, 4, 5]
    assert info.value.errors[0]["error"].startswith("priority: Input should be 'urgent'")
    assert info.value.errors[1]["error"] == "cpus: Input should be greater than 0"
    assert "lr" in info.value.errors[2]["error"]
    assert queue.counts() == before  # nothing stored
    ids = queue.submit_batch([{"name": f"p{i}", "priority": "background"} for i in range(50)])
    assert ids == sorted(ids) and len(ids) == 50
    assert [v.job.id for v in queue.list(["queued"], limit=50)] == ids
    with pytest.raises(ConfigError, match="empty"):
        queue.submit_batch([])


def test_change_priority_moves_a_queued_job_and_is_recorded(queue: QueueService) -> None:
    first = queue.submit("first")
    later = queue.submit("later", priority="background")
    assert queue.show(later.id).position == 2
    queue.set_priority(later.id, "urgent")
    view = queue.show(later.id)
    assert view.position == 1 and view.job.priority == 1000
    assert view.events[-1].reason == "priority background -> urgent"
    with pytest.raises(ConfigError, match="unknown priority"):
        queue.set_priority(first.id, "highest")
    queue.cancel(first.id)
    with pytest.raises(InvalidTransitionError, match="only queued jobs"):
        queue.set_priority(first.id, "urgent")


@pytest.mark.parametrize("kwargs,message", [
    ({"priority": "top"}, "^priority: Input should be"),
    ({"cpus": -1}, "^cpus: Input should be greater than 0"),
    ({"memory_mb": 0}, "^memory_mb: Input should be greater than 0"),
    ({"gpus": -1}, "^gpus: Input should be greater than or equal to 0"),
    ({"config": {"total_timesteps": -5}}, "^config: training option total_timesteps"),
    ({"max_attempts": 0}, "^max_attempts: "),
    ({"max_runtime_s": -1}, "^max_runtime_s: "),
    ({"team": " "}, "^team: must not be blank"),
])
def test_bad_submissions_change_nothing(queue: QueueService, kwargs: dict,
                                        message: str) -> None:
    before = queue.counts()
    with pytest.raises(ConfigError, match=message):
        queue.submit("x", **kwargs)
    assert queue.counts() == before


def test_missing_and_finished_jobs_are_clear_errors(queue: QueueService) -> None:
    with pytest.raises(NotFoundError, match="no job with id 424242"):
        queue.show(424242)
    with pytest.raises(NotFoundError):
        queue.cancel(424242)
    job = queue.submit("done")
    queue.cancel(job.id)
    with pytest.raises(InvalidTransitionError, match="already cancelled"):
        queue.cancel(job.id)
    with pytest.raises(ConfigError, match="limit"):
        queue.list(limit=100_000)


def test_schema_comes_from_migrations_and_matches_the_models(queue: QueueService) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlmodel import SQLModel

    from app.core.db import _head_revision, schema_revision

    assert schema_revision(queue.engine) == _head_revision()
    assert "alembic_version" in inspect(queue.engine).get_table_names()
    with queue.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), SQLModel.metadata) == []


def test_a_database_from_before_migrations_is_upgraded_in_place(tmp_path) -> None:
    """A 0.1 database (tables made by create_all, no alembic_version) keeps its jobs."""
    from alembic import command
    from sqlalchemy import text

    from app.core.db import _alembic_config, _head_revision, init_db, make_engine, schema_revision

    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    with engine.begin() as conn:
        command.upgrade(_alembic_config(conn), "0001")
        conn.execute(text("DROP TABLE alembic_version"))
        conn.execute(text(
            "INSERT INTO jobs (name, state, priority_class, priority, config, cpus, memory_mb, "
            "gpus, created_at, attempts, cancel_requested) VALUES ('old', 'queued', 'normal', "
            "100, '{}', 1.0, 1024, 0, '2026-01-01 00:00:00', 0, 0)"))
    init_db(engine)
    assert schema_revision(engine) == _head_revision()
    with Session(engine) as s:
        old = s.get(Job, 1)
        assert old.name == "old" and old.team == "default" and old.max_attempts == 3
