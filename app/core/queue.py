"""The persistent priority queue: submit (one or a batch), list, show, cancel, retry, change
priority, and every state change.

All state changes go through :func:`transition`, which checks the state machine and records a
:class:`JobEvent`, so each job carries its own history.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, col, func, select

from app.core.admission import (
    AdmissionCheck,
    Candidate,
    Limits,
    Pending,
    PendingReason,
    Planner,
    Usage,
    admission_order,
    estimate_starts,
)
from app.core.errors import ConfigError, InvalidTransitionError, NotFoundError, StaleStateError
from app.core.estimate import PRIOR_STEPS_PER_SECOND, Estimate, estimate_job
from app.core.models import Job, JobEvent
from app.core.priority import PRIORITY_CLASSES, priority_value
from app.core.states import TERMINAL, JobState, check_transition
from app.core.timeutil import as_utc, utcnow
from app.costs.budgets import BudgetAdmission, BudgetExceeded, BudgetService, Decision, money
from app.costs.calculator import peak_spans
from app.costs.pricing import Pricing, load_pricing, usd_text
from app.costs.windows import next_off_peak
from app.training.config import TrainConfig

ACTIVE_STATES = (JobState.DISPATCHING.value, JobState.RUNNING.value)
MAX_LIST_LIMIT = 1000
# How long the variants suggested with a budget refusal keep fitting, prices permitting: a
# person reads the refusal, then submits one of them.
SUGGESTION_HOLDS = timedelta(minutes=10)
# A cap checked before storing holds for this long: the jobs are priced again as they are
# stored, a moment later, and a peak boundary may pass in between.
CAP_HOLDS = timedelta(minutes=1)


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
        # Only this row changed, and its new values are known: no search of the session's
        # objects and no reload (together about a third of a bulk dispatch on SQLite).
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        session.refresh(job)
        raise StaleStateError(
            f"job {job.id} is {job.state} now, not {current.value}; nothing was changed"
        )
    for key, value in values.items():
        set_committed_value(job, key, value)  # what the row now holds, and not a pending change
    session.add(JobEvent(job_id=job.id, at=now, from_state=current.value, to_state=target.value,
                         reason=reason))
    session.flush()


def queue_order() -> tuple[Any, ...]:
    """Higher priority first; FIFO (submission time, then id) within a class, as admission."""
    return (col(Job.priority).desc(), col(Job.created_at).asc(), col(Job.id).asc())


class BatchError(ConfigError):
    """A batch with invalid items; nothing of it was stored."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        self.errors = errors
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(f"batch rejected, nothing queued: item {first['index']}: "
                         f"{first['error']}{more}")


@dataclass(frozen=True)
class JobSpec:
    """A validated submission, ready to store."""

    name: str
    config: dict[str, Any]
    priority_class: str
    cpus: float
    memory_mb: int
    gpus: int
    team: str
    project: str
    max_attempts: int
    max_runtime_s: float | None
    spot: bool = False
    not_before: datetime | None = None  # start no earlier (an off-peak start, say)


def _with_timesteps(spec: JobSpec, steps: int) -> JobSpec:
    return replace(spec, config={**spec.config, "total_timesteps": steps})


def _dollars(micros: int | None) -> str | None:
    return None if micros is None else usd_text(micros)


@dataclass(frozen=True)
class JobView:
    """A job as shown to people: its row, queue position, why it waits, and history."""

    job: Job
    position: int | None
    events: list[JobEvent]
    pending: Pending | None = None
    eta_start: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        j = self.job
        return {
            "id": j.id,
            "name": j.name,
            "state": j.state,
            "priority_class": j.priority_class,
            "priority": j.priority,
            "team": j.team,
            "project": j.project,
            "position": self.position,
            "pending_reason": self.pending.reason.value if self.pending else None,
            "pending_detail": self.pending.detail if self.pending else None,
            "eta_start": self.eta_start.isoformat(timespec="seconds") if self.eta_start else None,
            "cpus": j.cpus,
            "memory_mb": j.memory_mb,
            "gpus": j.gpus,
            "created_at": _iso(j.created_at),
            "started_at": _iso(j.started_at),
            "finished_at": _iso(j.finished_at),
            "attempts": j.attempts,
            "max_attempts": j.max_attempts,
            "not_before": _iso(j.not_before),
            "max_runtime_s": j.max_runtime_s,
            "estimated_duration_s": j.estimated_duration_s,
            "estimated_cost_usd": _dollars(j.estimated_cost_micros),
            "cost_usd": _dollars(j.cost_micros),
            "spot": j.spot,
            "progress_step": j.progress_step,
            "progress_sps": j.progress_sps,
            "exit_code": j.exit_code,
            "reason": j.reason,
            "mlflow_run_id": j.mlflow_run_id,
            "config": j.config,
            "events": [
                {"at": _iso(e.at), "from": e.from_state, "to": e.to_state, "reason": e.reason}
                for e in self.events
            ],
        }


def _iso(at: datetime | None) -> str | None:
    """UTC with its offset, whichever database the time came back from."""
    return as_utc(at).isoformat() if at is not None else None


def _ahead_of(job: Job) -> Any:
    """Queued jobs before ``job`` in queue order (higher priority, or the same and earlier)."""
    created, ident = col(Job.created_at), col(Job.id)
    return (col(Job.priority) > job.priority) | (
        (col(Job.priority) == job.priority)
        & ((created < job.created_at) | ((created == job.created_at) & (ident < job.id))))


def _check_label(label: str, value: str, longest: int) -> None:
    """Names are shown in terminals and stored in any database: bounded, no control
    characters (PostgreSQL refuses NUL; a terminal obeys escape codes)."""
    if len(value) > longest:
        raise ConfigError(f"{label} is longer than {longest} characters")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ConfigError(f"{label} must not contain control characters")


def _require(session: Session, job_id: int) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFoundError(f"no job with id {job_id}")
    return job


def candidate_of(row: Any) -> Candidate:
    return Candidate(id=row.id, priority_class=row.priority_class, priority=row.priority,
                     created_at=as_utc(row.created_at), cpus=row.cpus, memory_mb=row.memory_mb,
                     gpus=row.gpus, not_before=as_utc(row.not_before) if row.not_before else None,
                     team=row.team, project=row.project,
                     estimated_cost_micros=row.estimated_cost_micros,
                     estimated_duration_s=row.estimated_duration_s, attempts=row.attempts)


CANDIDATE_COLUMNS = (Job.id, Job.priority_class, Job.priority, Job.created_at, Job.cpus,
                     Job.memory_mb, Job.gpus, Job.not_before, Job.team, Job.project,
                     Job.estimated_cost_micros, Job.estimated_duration_s, Job.attempts)
# What a submission may say about a job (the arguments of QueueService.validate).
SUBMISSION_FIELDS = frozenset({"name", "config", "priority", "cpus", "memory_mb", "gpus", "team",
                               "project", "max_attempts", "max_runtime_s", "spot",
                               "start_after"})
# Queued jobs are read in queue order this many at a time until nothing more can start.
CHUNK = 256


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
    for job in session.exec(select(Job).where(col(Job.state).in_(ACTIVE_STATES))).all():
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


@dataclass
class QueueService:
    engine: Engine
    limits: Limits = field(default_factory=Limits)
    pricing: Pricing | None = None
    default_max_attempts: int = 3
    budgets: BudgetService | None = None
    # Steps per second of comparable past runs for a config (the costs service, from MLflow).
    throughput: Callable[[dict[str, Any], float, int], float] | None = None
    _sps_cache: dict[Any, float] = field(default_factory=dict, repr=False)
    _estimate_cache: dict[Any, Estimate] = field(default_factory=dict, repr=False)

    def _pricing(self) -> Pricing:
        if self.pricing is None:
            self.pricing = load_pricing()
        return self.pricing

    # --- submitting ------------------------------------------------------------------------

    def validate(self, name: str, config: dict[str, Any] | None = None,
                 priority: str = "normal", cpus: float = 1.0, memory_mb: int = 1024,
                 gpus: int = 0, team: str = "default", project: str = "default",
                 max_attempts: int | None = None, max_runtime_s: float | None = None,
                 spot: bool = False, start_after: datetime | str | None = None) -> JobSpec:
        """Checks one submission completely, touching nothing; raises ConfigError."""
        if not isinstance(name, str) or not name.strip():
            raise ConfigError("a job needs a non-empty name")
        _check_label("name", name, 200)
        priority_value(priority)
        for label, value in (("cpus", cpus), ("memory_mb", memory_mb), ("gpus", gpus)):
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise ConfigError(f"{label} must be a number, got {value!r}")
        if cpus <= 0 or memory_mb <= 0 or gpus < 0:
            raise ConfigError("cpus and memory_mb must be positive and gpus not negative")
        if int(gpus) != gpus:
            raise ConfigError("gpus must be a whole number")
        attempts = self.default_max_attempts if max_attempts is None else max_attempts
        if not isinstance(attempts, int) or attempts < 1:
            raise ConfigError("max_attempts must be a whole number of at least 1")
        if max_runtime_s is not None and (not isinstance(max_runtime_s, (int, float))
                                          or max_runtime_s <= 0):
            raise ConfigError("max_runtime_s must be a positive number of seconds")
        for label, value in (("team", team), ("project", project)):
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"{label} must be a non-empty name")
            _check_label(label, value, 100)
        if config is not None and not isinstance(config, dict):
            raise ConfigError("config must be a table of training options")
        if not isinstance(spot, bool):
            raise ConfigError("spot must be true or false")
        if isinstance(start_after, str):
            try:
                start_after = datetime.fromisoformat(start_after)
            except ValueError:
                raise ConfigError(f"start_after {start_after!r} is not an ISO time") from None
        if start_after is not None and not isinstance(start_after, datetime):
            raise ConfigError("start_after must be an ISO time")
        if start_after is not None and start_after.tzinfo is None:
            start_after = start_after.replace(tzinfo=self._pricing().zone)
        train_config = TrainConfig.from_dict(config or {})
        return JobSpec(name.strip(), train_config.to_dict(), priority, float(cpus),
                       int(memory_mb), int(gpus), team.strip(), project.strip(), attempts,
                       float(max_runtime_s) if max_runtime_s is not None else None, spot,
                       start_after)

    def estimate(self, spec: JobSpec, now: datetime | None = None) -> Estimate:
        start = max(now or utcnow(), spec.not_before) if spec.not_before else now
        return estimate_job(int(spec.config["total_timesteps"]), spec.cpus, spec.memory_mb,
                            spec.gpus, spec.priority_class, self._pricing(),
                            steps_per_second=self._steps_per_second(spec),
                            spot=spec.spot, start=start)

    def _steps_per_second(self, spec: JobSpec) -> float:
        """Throughput of comparable finished jobs, else the stated prior. Looked up once per
        kind of run within one submission, so a batch of thousands asks once."""
        if self.throughput is None:
            return PRIOR_STEPS_PER_SECOND
        config = spec.config
        key = (config.get("mode"), config.get("num_hosts"), config.get("device"), spec.cpus,
               spec.gpus)
        if key not in self._sps_cache:
            self._sps_cache[key] = self.throughput(config, spec.cpus, spec.gpus)
        return self._sps_cache[key]

    def _row(self, spec: JobSpec, now: datetime) -> dict[str, Any]:
        # A batch is mostly alike jobs: each distinct kind is priced once per submission.
        key = (spec.config["total_timesteps"], spec.config.get("mode"),
               spec.config.get("num_hosts"), spec.config.get("device"), spec.cpus,
               spec.memory_mb, spec.gpus, spec.priority_class, spec.spot, spec.not_before)
        estimate = self._estimate_cache.get(key)
        if estimate is None:
            estimate = self._estimate_cache[key] = self.estimate(spec, now)
        return dict(name=spec.name, state=JobState.QUEUED.value,
                    priority_class=spec.priority_class,
                    priority=PRIORITY_CLASSES[spec.priority_class], config=spec.config,
                    cpus=spec.cpus, memory_mb=spec.memory_mb, gpus=spec.gpus, created_at=now,
                    attempts=0, cancel_requested=False, team=spec.team, project=spec.project,
                    max_attempts=spec.max_attempts, max_runtime_s=spec.max_runtime_s,
                    estimated_duration_s=estimate.duration_s,
                    estimated_cost_micros=estimate.cost_micros, spot=spec.spot,
                    not_before=spec.not_before, cost_micros=0)

    def submit(self, name: str, config: dict[str, Any] | None = None, priority: str = "normal",
               cpus: float = 1.0, memory_mb: int = 1024, gpus: int = 0, **more: Any) -> Job:
        spec = self.validate(name, config, priority, cpus, memory_mb, gpus, **more)
        return self.get(self.store([spec])[0])

    def submit_batch(self, items: Sequence[dict[str, Any]]) -> list[int]:
        """All or nothing: every item is validated first; any error rejects the whole batch
        with a per-item error list (BatchError.errors)."""
        if not items:
            raise ConfigError("the batch is empty")
        specs: list[JobSpec] = []
        errors: list[dict[str, Any]] = []
        for index, item in enumerate(items):
            try:
                if not isinstance(item, dict):
                    raise ConfigError("each item must be a table with at least a name")
                unknown = set(item) - SUBMISSION_FIELDS
                if unknown:
                    raise ConfigError(f"unknown field(s) {', '.join(sorted(unknown))}")
                if "name" not in item:
                    raise ConfigError("missing name")
                specs.append(self.validate(**item))
            except ConfigError as exc:
                errors.append({"index": index, "name": item.get("name") if isinstance(item, dict)
                               else None, "error": str(exc)})
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

    def store_one(self, spec: JobSpec) -> JobView:
        """Queues one validated spec and returns it as submitted (with its place in the
        queue, as submitted() does), built in the same transaction: no second round trip."""
        with Session(self.engine) as s:
            [job_id], [row], [event] = self._insert(s, [spec])
            job = Job(id=job_id, **row)
            position = None
            if self.limits.aging_per_hour <= 0:
                position = 1 + s.exec(select(func.count()).where(
                    Job.state == JobState.QUEUED.value, _ahead_of(job))).one()
            s.commit()
        if position is None:
            return self.submitted(job_id)
        return JobView(job, position, [JobEvent(**event)])

    def _insert(self, s: Session, specs: Sequence[JobSpec]
                ) -> tuple[list[int], list[dict[str, Any]], list[dict[str, Any]]]:
        now = utcnow()
        self._sps_cache.clear()
        self._estimate_cache.clear()
        rows = [self._row(spec, now) for spec in specs]
        jobs, events = Job.__table__, JobEvent.__table__  # Core inserts: no ORM bookkeeping
        decision = self._check_budgets(s, rows, now)
        if decision.refusals:
            s.rollback()
            raise BudgetExceeded(self._refusal(specs, rows, decision.refusals))
        reason = "submitted" + "".join(f"; soft budget warning: {w}" for w in decision.warnings)
        conn = s.connection()
        result = conn.execute(jobs.insert().returning(jobs.c.id, sort_by_parameter_order=True),
                              rows)
        ids = [row[0] for row in result]
        history = [dict(job_id=job_id, at=now, from_state=None, to_state=JobState.QUEUED.value,
                        reason=reason[:1000]) for job_id in ids]
        conn.execute(events.insert(), history)
        return ids, rows, history

    def _check_budgets(self, s: Session, rows: list[dict[str, Any]], now: datetime) -> Decision:
        decision = Decision()
        if self.budgets is None:
            return decision
        extra: dict[tuple[str, str], int] = {}
        for row in rows:
            key = (row["team"], row["project"])
            extra[key] = extra.get(key, 0) + row["estimated_cost_micros"]
        for (team, project), micros in sorted(extra.items()):
            found = self.budgets.lock_and_check(s, team, project, micros, now)
            decision.warnings += found.warnings
            decision.refusals += found.refusals
        return decision

    def _refusal(self, specs: Sequence[JobSpec], rows: list[dict[str, Any]],
                 refusals: list[str]) -> str:
        what = "job" if len(specs) == 1 else f"batch of {len(specs)} jobs"
        message = f"{what} refused, nothing queued: " + "; ".join(refusals)
        if len(specs) == 1 and self.budgets is not None:
            fits = self.suggest(specs[0])
            if fits:
                message += ". What would fit: " + "; ".join(fits)
        return message

    def check(self, spec: JobSpec, max_cost_micros: int | None = None) -> dict[str, Any]:
        """Would this job be accepted now, and within an optional cap of its own? Its estimate
        against every budget that applies, and what would fit if not. Changes nothing."""
        now = utcnow()
        estimate = self.estimate(spec, now)
        rows, refusals = [], []
        with Session(self.engine) as s:
            applicable = self.budgets.applicable(s, spec.team, spec.project) \
                if self.budgets is not None else []
            for b in applicable:
                _, committed = self.budgets.measure(s, b, now)  # type: ignore[union-attr]
                room = b.limit_micros - committed
                fits = estimate.cost_micros <= room
                rows.append({"name": b.name, "hard": b.hard, "limit_usd": usd_text(b.limit_micros),
                             "committed_usd": usd_text(committed),
                             "remaining_usd": usd_text(room), "fits": fits})
                if not fits and b.hard:
                    refusals.append(f"budget {b.name} has {money(max(room, 0))} left")
        if max_cost_micros is not None and estimate.cost_micros > max_cost_micros:
            refusals.append(f"over the cap of {money(max_cost_micros)}")
        suggestions: list[str] = []
        if refusals:
            suggestions = self.suggest(spec) if self.budgets is not None else []
            if max_cost_micros is not None:
                steps = self._fitting_timesteps(spec, max_cost_micros, now)
                if steps:
                    suggestions.append(f"total_timesteps={steps:,} fits the cap")
        return {"fits": not refusals, "estimated_cost_usd": usd_text(estimate.cost_micros),
                "estimated_duration_s": round(estimate.duration_s, 1),
                "cap_usd": usd_text(max_cost_micros) if max_cost_micros is not None else None,
                "budgets": rows, "refusals": refusals, "suggestions": suggestions}

    def suggest(self, spec: JobSpec) -> list[str]:
        """Variants of a refused job that fit the room left under its hard budgets, priced at
        their dearest start within SUGGESTION_HOLDS: a person submits one a little later, and
        a job that straddles a peak boundary costs more the nearer its start comes to peak."""
        assert self.budgets is not None
        now = utcnow()
        with Session(self.engine) as s:
            room = self.budgets.headroom(s, spec.team, spec.project, now)
        if room is None or room <= 0:
            return []
        out: list[str] = []
        variants = [
            ("background priority", replace(spec, priority_class="background")),
            ("spot capacity", replace(spec, spot=True)),
            ("background on spot", replace(spec, priority_class="background", spot=True)),
        ]
        off_peak = next_off_peak(self._pricing(), now)
        if off_peak > now:
            variants.append((f"starting off-peak at {off_peak.isoformat(timespec='minutes')}",
                             replace(spec, not_before=off_peak)))
        for label, variant in variants:
            cost = self.dearest_start_cost(variant, now)
            if cost <= room:
                out.append(f"{label} ({money(cost)})")
        steps = self._fitting_timesteps(spec, room, now)
        if steps:
            cost = self.dearest_start_cost(_with_timesteps(spec, steps), now)
            out.append(f"total_timesteps={steps:,} ({money(cost)})")
        return out

    def dearest_start_cost(self, spec: JobSpec, now: datetime,
                           within: timedelta = SUGGESTION_HOLDS) -> int:
        """The highest estimate for the job submitted at any moment in [now, now + within].
        The price is piecewise linear in the start time, so its maximum lies at an end of
        that range or where the job's start or end crosses a peak boundary."""
        duration = timedelta(seconds=self.estimate(spec, now).duration_s)
        last = now + within
        boundaries = {edge for span in peak_spans(self._pricing(), now - timedelta(hours=1),
                                                   last + duration + timedelta(hours=1))
                      for edge in span}
        starts = {now, last} | {t for b in boundaries for t in (b, b - duration)
                                if now < t < last}
        return max(self.estimate(spec, t).cost_micros for t in starts)

    def dearest_total(self, specs: Sequence[JobSpec], within: timedelta = CAP_HOLDS) -> int:
        """What the specs cost together if stored at the dearest moment of the next
        ``within``: a cap that this total fits still holds for the prices they are stored
        at."""
        now = utcnow()
        return sum(self.dearest_start_cost(spec, now, within) for spec in specs)

    def _fitting_timesteps(self, spec: JobSpec, room: int, now: datetime) -> int | None:
        lo, hi = 0, int(spec.config["total_timesteps"])
        while lo < hi:  # the most timesteps whose estimate fits
            mid = (lo + hi + 1) // 2
            if self.dearest_start_cost(_with_timesteps(spec, mid), now) <= room:
                lo = mid
            else:
                hi = mid - 1
        return lo or None

    # --- reading ---------------------------------------------------------------------------

    def get(self, job_id: int) -> Job:
        with Session(self.engine) as s:
            return _require(s, job_id)

    def list(self, states: Iterable[str] | None = None, limit: int = 200, offset: int = 0,
             team: str | None = None, priority_class: str | None = None) -> list[JobView]:
        """Jobs in queue order, with position, pending reason and ETA for queued ones."""
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
            jobs = s.exec(stmt.order_by(*queue_order()).offset(offset).limit(limit)).all()
            # Without aging, the jobs shown are the first in admission order: plan only those.
            upto = None if self.limits.aging_per_hour > 0 else offset + limit
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
                    Job.state == JobState.QUEUED.value, _ahead_of(job))).one()
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
            return JobView(job, status.positions.get(job_id), list(events),
                           status.pending.get(job_id), status.eta.get(job_id))

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
        checks = [BudgetAdmission(self.budgets, s, now)] if self.budgets is not None else []
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
        for job_id in plan.admitted:
            waiting.pending[job_id] = Pending(PendingReason.NEXT_TICK,
                                              "fits now; starts on the next tick")
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

    def retry(self, job_id: int) -> Job:
        with Session(self.engine) as s:
            job = _require(s, job_id)
            if job.state != JobState.FAILED.value:
                raise InvalidTransitionError(
                    f"job {job_id} is {job.state}; only failed jobs can be retried")
            job.exit_code = None
            job.executor_ref = None
            job.not_before = None
            # A person asked: a fresh set of attempts on top of those already made.
            job.max_attempts = job.attempts + self.default_max_attempts
            transition(s, job, JobState.QUEUED, "retried by user")
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

    def record_run(self, job_id: int, run_id: str) -> None:
        """The training process reports which MLflow run holds its metrics."""
        with Session(self.engine) as s:
            job = _require(s, job_id)
            job.mlflow_run_id = run_id
            s.add(job)
            s.commit()


@dataclass
class _Waiting:
    positions: dict[int, int] = field(default_factory=dict)
    pending: dict[int, Pending] = field(default_factory=dict)
    eta: dict[int, datetime] = field(default_factory=dict)
