"""The persistent priority queue: submit (one or a batch), list, show, cancel, retry and change
priority. Every state change goes through app.core.transitions.

QueueService is the job domain's front: it applies the submission contract
(app.core.submission), then asks what it cannot know itself through the Protocols of
app.core.ports — the training layer's check of training options, the costs layer's estimate
and budget gate — which the composition root (app/services.py) supplies. Without them it still
queues, unpriced and ungated (what the core's own tests use).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from app.core import admission_pause, start_times
from app.core.admission import (
    Limits,
    Pending,
    PendingReason,
    estimate_starts,
)
from app.core.errors import (
    BudgetExceeded,
    ConfigError,
    InvalidTransitionError,
    NotFoundError,
    StaleStateError,
)
from app.core.job_view import JobView
from app.core.models import Job, JobAttempt, JobEvent
from app.core.planning import active_usage, ahead_of, plan_queue, queue_order
from app.core.ports import (
    BudgetGate,
    ChecksFactory,
    ConfigValidator,
    Decision,
    Estimate,
    Estimator,
)
from app.core.priority import PRIORITY_CLASSES, priority_value
from app.core.states import RESUMABLE, TERMINAL, JobState
from app.core.submission import JobSpec, JobSubmission, SubmissionError, parse_submission
from app.core.timeutil import utcnow
from app.core.transitions import transition

MAX_LIST_LIMIT = 1000


class BatchError(ConfigError):
    """A batch with invalid items; nothing of it was stored."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        self.errors = errors
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(f"batch rejected, nothing queued: item {first['index']}: "
                         f"{first['error']}{more}")


def _require(session: Session, job_id: int) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFoundError(f"no job with id {job_id}")
    return job


@dataclass
class QueueService:
    engine: Engine
    limits: Limits = field(default_factory=Limits)
    default_max_attempts: int = 3
    # A start_after without an offset is read in this zone (the pricing time zone).
    zone: tzinfo = UTC
    validate_config: ConfigValidator | None = None
    estimator: Estimator | None = None
    gate: BudgetGate | None = None
    checks_for: ChecksFactory | None = None
    # When the cheap hours begin (for a start_after of "off-peak").
    off_peak: start_times.OffPeak | None = None
    _estimate_cache: dict[Any, Estimate] = field(default_factory=dict, repr=False)

    # --- submitting ------------------------------------------------------------------------

    def validate(self, item: Mapping[str, Any] | JobSubmission) -> JobSpec:
        """Checks one submission completely, touching nothing; raises ConfigError (a
        SubmissionError naming the fields for a broken contract)."""
        sub = parse_submission(dict(item) if isinstance(item, Mapping) else item)
        config = sub.config
        if self.validate_config is not None:
            try:
                config = self.validate_config(config)
            except SubmissionError:
                raise
            except ConfigError as exc:
                raise SubmissionError([{"field": "config", "message": str(exc)}]) from None
        _check_worker_shares(config, sub.cpus, sub.gpus)
        start = sub.start_after
        if isinstance(start, str):
            try:
                start = start_times.resolve(start, utcnow(), self.zone, self.off_peak)
            except ConfigError as exc:
                raise SubmissionError([{"field": "start_after", "message": str(exc)}]) from None
        elif start is not None and start.tzinfo is None:
            start = start.replace(tzinfo=self.zone)
        name, team, project = sub.name.strip(), (sub.team or "default").strip(), \
            sub.project.strip()
        for label, value in (("name", name), ("team", team), ("project", project)):
            if not value:
                raise SubmissionError([{"field": label, "message": "must not be blank"}])
        attempts = self.default_max_attempts if sub.max_attempts is None else sub.max_attempts
        return JobSpec(name, config, sub.priority, float(sub.cpus), int(sub.memory_mb),
                       int(sub.gpus), team, project, attempts, sub.max_runtime_s, sub.spot,
                       start)

    def estimate(self, spec: JobSpec, now: datetime | None = None) -> Estimate | None:
        return self.estimator.estimate(spec, now) if self.estimator is not None else None

    def _row(self, spec: JobSpec, now: datetime) -> dict[str, Any]:
        # A batch is mostly alike jobs: each distinct kind is priced once per submission.
        key = (spec.config.get("total_timesteps"), spec.config.get("mode"),
               spec.config.get("num_hosts"), spec.config.get("device"), spec.cpus,
               spec.memory_mb, spec.gpus, spec.priority_class, spec.spot, spec.not_before)
        estimate = self._estimate_cache.get(key)
        if estimate is None and self.estimator is not None:
            estimate = self._estimate_cache[key] = self.estimator.estimate(spec, now)
        return dict(name=spec.name, state=JobState.QUEUED.value,
                    priority_class=spec.priority_class,
                    priority=PRIORITY_CLASSES[spec.priority_class], config=spec.config,
                    cpus=spec.cpus, memory_mb=spec.memory_mb, gpus=spec.gpus, created_at=now,
                    attempts=0, cancel_requested=False, team=spec.team, project=spec.project,
                    max_attempts=spec.max_attempts, max_runtime_s=spec.max_runtime_s,
                    estimated_duration_s=estimate.duration_s if estimate else None,
                    estimated_cost_micros=estimate.cost_micros if estimate else 0,
                    spot=spec.spot, not_before=spec.not_before, cost_micros=0,
                    sweep_id=spec.sweep_id, trial_number=spec.trial_number)

    def submit(self, name: str, config: dict[str, Any] | None = None, priority: str = "normal",
               **more: Any) -> Job:
        spec = self.validate({"name": name, "config": config or {}, "priority": priority,
                              **more})
        return self.get(self.store([spec])[0])

    def submit_batch(self, items: Sequence[Any]) -> list[int]:
        """All or nothing: every item is validated first; any error rejects the whole batch
        with a per-item error list (BatchError.errors)."""
        if not items:
            raise ConfigError("the batch is empty")
        specs: list[JobSpec] = []
        errors: list[dict[str, Any]] = []
        for index, item in enumerate(items):
            try:
                specs.append(self.validate(item) if isinstance(item, Mapping)
                             else self.validate(parse_submission(item)))
            except ConfigError as exc:
                name = item.get("name") if isinstance(item, Mapping) else None
                errors.append({"index": index, "name": name if isinstance(name, str) else None,
                               "error": str(exc)})
        if errors:
            raise BatchError(errors)
        return self.store(specs)

    def store(self, specs: Sequence[JobSpec]) -> list[int]:
        """Queues validated specs (from validate()). One transaction: the budget check
        (locking the budgets involved), the jobs, then their first history event. A hard
        budget's refusal stores nothing."""
        with Session(self.engine) as s:
            ids, _, _ = self._insert(s, specs)
            s.commit()
        return ids

    def store_one(self, spec: JobSpec, idempotency_key: str | None = None) -> JobView:
        """Queues one validated spec and returns it as submitted (with its place in the
        queue, as submitted() does), built in the same transaction: no second round trip.

        With ``idempotency_key``, a submission its team already made with that key is not
        queued again: the job it made is returned (a client retrying a POST whose answer it
        lost)."""
        if idempotency_key is not None:
            found = self._by_key(spec.team, idempotency_key)
            if found is not None:
                return self.submitted(found)
        with Session(self.engine) as s:
            try:
                [job_id], [row], [event] = self._insert(s, [spec], idempotency_key)
                job = Job(id=job_id, **row)
            except IntegrityError:
                s.rollback()  # the same key stored a moment ago by a concurrent retry
                found = self._by_key(spec.team, idempotency_key) if idempotency_key else None
                if found is None:
                    raise
                return self.submitted(found)
            position = None
            if self.limits.aging_per_hour <= 0:
                position = 1 + s.exec(select(func.count()).where(
                    Job.state == JobState.QUEUED.value, ahead_of(job))).one()
            s.commit()
        if position is None:
            return self.submitted(job_id)
        return JobView(job, position, [JobEvent(**event)])

    def _by_key(self, team: str, key: str) -> int | None:
        with Session(self.engine) as s:
            return s.exec(select(Job.id).where(Job.team == team)
                          .where(Job.idempotency_key == key)).first()

    def _insert(self, s: Session, specs: Sequence[JobSpec], idempotency_key: str | None = None
                ) -> tuple[list[int], list[dict[str, Any]], list[dict[str, Any]]]:
        now = utcnow()
        self._estimate_cache.clear()
        rows = [self._row(spec, now) for spec in specs]
        if idempotency_key is not None:
            rows[0]["idempotency_key"] = idempotency_key
        jobs, events = Job.__table__, JobEvent.__table__  # Core inserts: no ORM bookkeeping
        decision = self.gate.lock_and_check(s, rows, now) if self.gate else Decision()
        if decision.refusals:
            s.rollback()
            assert self.gate is not None
            raise BudgetExceeded(self.gate.refusal(specs, decision.refusals))
        reason = "submitted" + "".join(f"; soft budget warning: {w}" for w in decision.warnings)
        conn = s.connection()
        result = conn.execute(jobs.insert().returning(jobs.c.id, sort_by_parameter_order=True),
                              rows)
        ids = [row[0] for row in result]
        history = [dict(job_id=job_id, at=now, from_state=None, to_state=JobState.QUEUED.value,
                        reason=reason[:1000]) for job_id in ids]
        conn.execute(events.insert(), history)
        return ids, rows, history

    # --- reading ---------------------------------------------------------------------------

    def get(self, job_id: int) -> Job:
        with Session(self.engine) as s:
            return _require(s, job_id)

    def list(self, states: Iterable[str] | None = None, limit: int = 200, offset: int = 0,
             team: str | None = None, priority_class: str | None = None,
             newest_first: bool = False) -> list[JobView]:
        """Jobs in queue order (or newest first), with position, pending reason and ETA for
        queued ones."""
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise ConfigError(f"limit must be between 1 and {MAX_LIST_LIMIT}")
        if offset < 0:
            raise ConfigError("offset must not be negative")
        if priority_class is not None:
            priority_value(priority_class)
        with Session(self.engine) as s:
            stmt = select(Job)
            if states:
                states = list(states)
                unknown = set(states) - {st.value for st in JobState}
                if unknown:
                    raise ConfigError(f"unknown state(s) {', '.join(sorted(unknown))}")
                stmt = stmt.where(col(Job.state).in_(states))
            if team:
                stmt = stmt.where(Job.team == team)
            if priority_class:
                stmt = stmt.where(Job.priority_class == priority_class)
            order = (col(Job.id).desc(),) if newest_first else queue_order()
            jobs = s.exec(stmt.order_by(*order).offset(offset).limit(limit)).all()
            # Without aging, the jobs shown are the first in admission order: plan only those.
            upto = None if self.limits.aging_per_hour > 0 or newest_first else offset + limit
            status = self._waiting(s, upto) \
                if any(j.state == JobState.QUEUED.value for j in jobs) else _Waiting()
            return [JobView(j, status.positions.get(j.id), [], status.pending.get(j.id),
                            status.eta.get(j.id)) for j in jobs]

    def submitted(self, job_id: int) -> JobView:
        """A job as just submitted: its row, history and place in the queue, without the
        admission plan that show() runs (pending reason and ETA), so a submission answers in
        constant time however long the queue is."""
        with Session(self.engine) as s:
            job = _require(s, job_id)
            events = s.exec(
                select(JobEvent).where(JobEvent.job_id == job_id).order_by(col(JobEvent.id))
            ).all()
            position = None
            if job.state == JobState.QUEUED.value and self.limits.aging_per_hour <= 0:
                position = 1 + s.exec(select(func.count()).where(
                    Job.state == JobState.QUEUED.value, ahead_of(job))).one()
            elif job.state == JobState.QUEUED.value:
                position = self._waiting(s).positions.get(job_id)
            return JobView(job, position, list(events))

    def show(self, job_id: int) -> JobView:
        with Session(self.engine) as s:
            job = _require(s, job_id)
            events = s.exec(
                select(JobEvent).where(JobEvent.job_id == job_id).order_by(col(JobEvent.id))
            ).all()
            status = self._waiting(s) if job.state == JobState.QUEUED.value else _Waiting()
            history = s.exec(select(JobAttempt).where(JobAttempt.job_id == job_id)
                             .order_by(col(JobAttempt.number), col(JobAttempt.id))).all()
            return JobView(job, status.positions.get(job_id), list(events),
                           status.pending.get(job_id), status.eta.get(job_id), list(history))

    def counts(self) -> dict[str, int]:
        with Session(self.engine) as s:
            return dict(s.exec(select(Job.state, func.count()).group_by(Job.state)).all())

    def status_counts(self, team: str | None = None) -> dict[str, Any]:
        """Jobs per state (every state listed) and queued jobs per priority class."""
        with Session(self.engine) as s:
            by_state = select(Job.state, func.count())
            by_class = (select(Job.priority_class, func.count())
                        .where(Job.state == JobState.QUEUED.value))
            if team is not None:
                by_state, by_class = (by_state.where(Job.team == team),
                                      by_class.where(Job.team == team))
            states = dict(s.exec(by_state.group_by(Job.state)).all())
            classes = dict(s.exec(by_class.group_by(Job.priority_class)).all())
        return {"counts": {st.value: states.get(st.value, 0) for st in JobState},
                "queued_by_class": {c: classes.get(c, 0) for c in PRIORITY_CLASSES}}

    def _waiting(self, s: Session, upto: int | None = None) -> _Waiting:
        """Position, pending reason and estimated start of queued jobs (the first ``upto``
        in queue order, or all), from the same admission rules the dispatcher applies."""
        now = utcnow()
        usage, running = active_usage(s)
        checks = self.checks_for(s, now) if self.checks_for is not None else ()
        planner = plan_queue(s, usage, self.limits, now, checks, upto=upto if upto else 10**9)
        plan = planner.plan
        durations = {c.id: c for c in planner.fed}
        starts = estimate_starts([r for _, r in running],
                                 [(i, durations[i].estimated_duration_s or 0.0)
                                  for i in plan.order],
                                 self.limits.max_concurrent)
        waiting = _Waiting()
        waiting.positions = {job_id: i + 1 for i, job_id in enumerate(plan.order)}
        waiting.pending = dict(plan.pending)
        paused = admission_pause.current(s)
        for job_id in plan.admitted:
            waiting.pending[job_id] = Pending(PendingReason.NEXT_TICK,
                                              "fits now; starts on the next tick") \
                if paused is None else Pending(PendingReason.PAUSED, paused.sentence())
        if paused is not None:  # nothing starts, and no start can be estimated, until resumed
            waiting.pending = {job_id: Pending(PendingReason.PAUSED, paused.sentence())
                               for job_id in waiting.positions}
            return waiting
        for job_id, offset_s in starts.items():
            start = now + timedelta(seconds=offset_s)
            not_before = durations[job_id].not_before
            waiting.eta[job_id] = max(start, not_before) if not_before else start
        return waiting

    # --- changing --------------------------------------------------------------------------

    def cancel(self, job_id: int, reason: str = "cancelled by user") -> Job:
        """Queued jobs are cancelled at once; running ones are marked and the dispatcher stops
        them on its next tick, then cancels them."""
        with Session(self.engine) as s:
            job = _require(s, job_id)
            state = JobState(job.state)
            if state in TERMINAL:
                raise InvalidTransitionError(f"job {job_id} is already {state.value}; nothing to cancel")
            if state is JobState.QUEUED:
                transition(s, job, JobState.CANCELLED, reason)
            else:
                job.reason = f"cancel requested: {reason}"
                job.cancel_requested = True
                s.add(job)
            s.commit()
            s.refresh(job)
            return job

    def resume(self, job_id: int) -> Job:
        """Sends a failed, cancelled or budget-stopped job back to the queue; its next attempt
        continues from the job's latest checkpoint (and its MLflow run)."""
        with Session(self.engine) as s:
            job = _require(s, job_id)
            if JobState(job.state) not in RESUMABLE:
                raise InvalidTransitionError(
                    f"job {job_id} is {job.state}; only failed, cancelled and budget-exhausted "
                    "jobs can be resumed")
            job.exit_code = None
            job.executor_ref = None
            job.not_before = None
            job.cancel_requested = False
            # A person asked: a fresh set of attempts on top of those already made.
            job.max_attempts = job.attempts + self.default_max_attempts
            transition(s, job, JobState.QUEUED, {
                JobState.FAILED.value: "resumed by user after it failed",
                JobState.CANCELLED.value: "resumed by user after it was cancelled",
            }.get(job.state, "resumed by user after its budget stop"))
            s.commit()
            s.refresh(job)
            return job

    def set_priority(self, job_id: int, priority: str) -> Job:
        """Moves a queued job to another priority class (FIFO position within it is kept by
        submission order)."""
        value = priority_value(priority)
        with Session(self.engine) as s:
            job = _require(s, job_id)
            if job.state != JobState.QUEUED.value:
                raise InvalidTransitionError(
                    f"job {job_id} is {job.state}; only queued jobs change priority")
            before = job.priority_class
            result = s.exec(  # type: ignore[call-overload]
                update(Job).where(col(Job.id) == job_id)
                .where(col(Job.state) == JobState.QUEUED.value)
                .values(priority_class=priority, priority=value))
            if result.rowcount != 1:
                raise StaleStateError(f"job {job_id} left the queue meanwhile; nothing changed")
            s.add(JobEvent(job_id=job_id, from_state=job.state, to_state=job.state,
                           reason=f"priority {before} -> {priority}"))
            s.commit()
            s.refresh(job)
            return job

    def move_to_front(self, job_id: int) -> Job:
        """Puts a queued job first in queue order: its order key rises above every other
        queued job's, its priority class (and so its price) stays. Later urgent submissions
        queue behind it; admission still starts it only when it fits."""
        with Session(self.engine) as s:
            job = _require(s, job_id)
            if job.state != JobState.QUEUED.value:
                raise InvalidTransitionError(
                    f"job {job_id} is {job.state}; only queued jobs can move to the front")
            top = s.exec(select(func.max(Job.priority))
                         .where(Job.state == JobState.QUEUED.value)
                         .where(col(Job.id) != job_id)).one()
            if top is None or job.priority > top:
                return job  # already first
            result = s.exec(  # type: ignore[call-overload]
                update(Job).where(col(Job.id) == job_id)
                .where(col(Job.state) == JobState.QUEUED.value)
                .values(priority=top + 1))
            if result.rowcount != 1:
                raise StaleStateError(f"job {job_id} left the queue meanwhile; nothing changed")
            s.add(JobEvent(job_id=job_id, from_state=job.state, to_state=job.state,
                           reason="moved to the front of the queue"))
            s.commit()
            s.refresh(job)
            return job

    def count(self, states: Iterable[str] | None = None, team: str | None = None,
              priority_class: str | None = None) -> int:
        """How many jobs :meth:`list` would show with no limit."""
        with Session(self.engine) as s:
            stmt = select(func.count()).select_from(Job)
            if states:
                stmt = stmt.where(col(Job.state).in_(list(states)))
            if team:
                stmt = stmt.where(Job.team == team)
            if priority_class:
                stmt = stmt.where(Job.priority_class == priority_class)
            return int(s.exec(stmt).one())

    def record_run(self, job_id: int, run_id: str) -> None:
        """The training process reports which MLflow run holds its metrics."""
        with Session(self.engine) as s:
            job = _require(s, job_id)
            job.mlflow_run_id = run_id
            s.add(job)
            s.commit()

    def record_resume(self, job_id: int, step: int | None) -> None:
        """The training process reports the step its attempt resumed from (None: step 0).
        One column, written alone, so the dispatcher's own writes to the row are untouched."""
        with Session(self.engine) as s:
            _require(s, job_id)
            s.execute(update(Job).where(col(Job.id) == job_id).values(resumed_from_step=step))
            s.commit()


@dataclass
class _Waiting:
    positions: dict[int, int] = field(default_factory=dict)
    pending: dict[int, Pending] = field(default_factory=dict)
    eta: dict[int, datetime] = field(default_factory=dict)


def _check_worker_shares(config: dict[str, Any], cpus: float, gpus: int) -> None:
    """A data-parallel job's cpus and gpus are its workers' together: each worker gets at
    least one CPU and the same whole number of GPUs (one pod each on a cluster)."""
    workers = config.get("num_workers", 1)
    if not isinstance(workers, int) or workers <= 1:
        return
    if cpus < workers:
        raise SubmissionError([{"field": "cpus", "message": (
            f"num_workers={workers} needs at least {workers} (one per worker): a job's cpus, "
            "memory_mb and gpus are all its workers' together")}])
    if gpus % workers:
        raise SubmissionError([{"field": "gpus", "message": (
            f"{gpus} GPUs do not split evenly between {workers} workers")}])
