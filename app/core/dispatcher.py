"""The dispatcher: each tick reconciles running jobs, admits queued ones in one batch, and
launches them. Exactly one dispatcher leads at a time (see lease.py).

Crash safety: a job is claimed (queued -> dispatching, attempt counted) in one transaction
before anything is started, and every attempt has a name the executor can find again
(``Executor.find``). A dispatcher that dies between starting an attempt and recording it is
followed by one that adopts the attempt instead of starting a second.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from app.core import admission_pause
from app.core.admission import Limits
from app.core.errors import StaleStateError
from app.core.executors.base import ExecStatus, Executor, LaunchError, Phase, StartUnderWay
from app.core.failures import Failure, FailureKind, backoff_until, classify
from app.core.lease import LEASE_NAME, LeadershipLost, Lease
from app.core.models import DispatcherLease, Job, JobAttempt, JobEvent
from app.core.planning import ACTIVE_STATES, active_usage, plan_queue
from app.core.ports import ChecksFactory, RunCloser, SpendGuard, SweepDriver
from app.core.states import PRUNED_EXIT_CODE, JobState
from app.core.timeutil import as_utc, utcnow
from app.core.transitions import transition, transition_many, transitions_pending

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 10.0
# A job whose reconcile raises the same error this many ticks in a row is failed with it.
REPEATED_ERRORS = 3
# Infrastructure-looking failures that a job can cause itself (an abort, running out of
# memory): the same one twice in a row is not retried. Kills from outside (preemption,
# eviction, a lost node, SIGTERM/SIGKILL) are retried however often they repeat.
SELF_INFLICTED = ("OOMKilled", "signal 6", "exit code -6", "exit code 134", "MemoryError",
                  "out of memory", "Cannot allocate memory", "bad_alloc")
# The cost in micro-dollars of a job's resources from one time to another.
AttemptPricer = Callable[[Job, datetime, datetime], int]
# An attempt's outcome (job_attempts.outcome) by the failure that ended it.
OUTCOME_OF_FAILURE = {FailureKind.USER: "failed", FailureKind.INFRASTRUCTURE: "infrastructure",
                      FailureKind.PREEMPTION: "preempted", FailureKind.TIMEOUT: "timeout"}


@dataclass(frozen=True)
class Progress:
    """What a run has reported: for ETAs, the dashboard's sparkline and the final verdict."""

    global_step: int
    steps_per_second: float
    rewards: list[float] = field(default_factory=list)  # the most recent, oldest first
    eval_ratio: float | None = None  # PPO's mean wait / the best heuristic's, at the end


# Reads an MLflow run's progress; None when it has reported nothing.
ProgressReader = Callable[[str], "Progress | None"]
# Readies what later ticks will need (the tracking store), beside the first ticks.
WarmUp = Callable[[], object]


@dataclass
class TickReport:
    leader: bool = True
    finished: list[tuple[int, str]] = field(default_factory=list)
    retried: list[int] = field(default_factory=list)
    launched: list[int] = field(default_factory=list)
    adopted: list[int] = field(default_factory=list)
    queued: int = 0
    running: int = 0
    # What went wrong this tick (a job whose step raised, admission failing), for /health.
    errors: list[str] = field(default_factory=list)
    lost_lease: bool = False

    @property
    def degraded(self) -> bool:
        return bool(self.errors) or self.lost_lease

    @property
    def idle(self) -> bool:
        """Nothing queued or running, as seen by a leader (a follower sees nothing)."""
        return self.leader and self.queued == 0 and self.running == 0


class Dispatcher:
    def __init__(self, engine: Engine, executor: Executor, lease: Lease,
                 limits: Limits | None = None, checks_for: ChecksFactory | None = None,
                 progress: ProgressReader | None = None,
                 backoff_base_s: float = 30.0, price: AttemptPricer | None = None,
                 spend_guard: SpendGuard | None = None, stop_horizon_s: float = 5.0,
                 runs: RunCloser | None = None, sweeps: SweepDriver | None = None,
                 warm_up: WarmUp | None = None) -> None:
        self.checks_for = checks_for
        self.warm_up = warm_up
        self.sweeps = sweeps
        self.runs = runs
        # Hard budgets hold while jobs run: a job is stopped while its budgets still have
        # room for stop_horizon_s (a tick, and a stop's grace) of their running jobs' spend.
        self.spend_guard = spend_guard
        self.stop_horizon_s = stop_horizon_s
        self.price = price
        self.backoff_base_s = backoff_base_s
        self.engine = engine
        self.executor = executor
        self.lease = lease
        self.limits = limits or Limits()
        self.progress = progress
        self._progress_read_at: dict[int, float] = {}
        # Consecutive ticks on which a job's reconcile raised, with the last error: a job
        # whose own data breaks a step is failed after REPEATED_ERRORS ticks, and a passing
        # fault (an API server's hiccup) is only reported.
        self._step_errors: dict[int, tuple[int, str]] = {}

    def tick(self) -> TickReport:
        if not self.lease.acquire():
            return TickReport(leader=False)
        report = TickReport()
        try:
            self._reconcile(report)
            self._step_sweeps(report)
            try:
                admitted = self._admit()
            except LeadershipLost:
                raise
            except Exception as exc:  # noqa: BLE001 - reported; reconcile and health go on
                log.exception("admission failed")
                report.errors.append(f"admission failed: {type(exc).__name__}: {exc}")
                admitted = []
            for job_id in admitted:
                self._launch(job_id, report)
        except LeadershipLost as exc:
            log.warning("%s; this dispatcher stops acting until it leads again", exc)
            report.lost_lease = True
            report.leader = False
            return report
        with Session(self.engine) as s:
            counts = dict(s.exec(select(Job.state, func.count()).group_by(Job.state)).all())
        report.queued = counts.get(JobState.QUEUED.value, 0)
        report.running = sum(counts.get(state, 0) for state in ACTIVE_STATES)
        self._record_health(report)
        return report

    def _step_sweeps(self, report: TickReport) -> None:
        """Trials queued here are admitted in this same tick: a study's next trial starts as
        soon as the last one ended."""
        if self.sweeps is None:
            return
        self._keep_leading()
        try:
            report.errors.extend(self.sweeps.step())
        except LeadershipLost:
            raise
        except Exception as exc:  # noqa: BLE001 - reported; the queue goes on without sweeps
            log.exception("stepping sweeps failed")
            report.errors.append(f"sweeps failed: {type(exc).__name__}: {exc}")

    def _move(self, s: Session, job: Job, target: JobState, reason: str = "") -> None:
        """A state change made as the leader: refused (LeadershipLost) after a takeover."""
        transition(s, job, target, reason, fence=self.lease.fence())

    def _keep_leading(self) -> None:
        """Renews the lease once a third of it has passed, so a long tick never outlives it;
        raises LeadershipLost if another dispatcher took over meanwhile."""
        if self.lease.remaining_s() < self.lease.ttl.total_seconds() * 2 / 3:
            self.lease.renew()

    def _record_health(self, report: TickReport) -> None:
        """The tick's verdict on the lease row, where /health, the dashboard and queue list
        read it: empty when all went well, else why the dispatcher is degraded."""
        detail = "; ".join(report.errors)[:1000]
        with Session(self.engine) as s:
            s.execute(update(DispatcherLease).where(DispatcherLease.name == LEASE_NAME)
                      .where(self.lease.fence()).values(degraded=detail or None))
            s.commit()

    # --- 1. reconcile ------------------------------------------------------------------------

    def _reconcile(self, report: TickReport) -> None:
        with Session(self.engine) as s:
            jobs = s.exec(select(Job).where(col(Job.state).in_(ACTIVE_STATES))).all()
            for job in jobs:
                self._keep_leading()
                job_id = job.id
                try:
                    self._reconcile_one(s, job, report)
                    # Most running jobs change nothing on a tick: commit only what did, so
                    # the others are not reloaded.
                    if transitions_pending(s) or s.dirty or s.new:
                        s.commit()
                    self._step_errors.pop(job_id, None)
                except StaleStateError:
                    transitions_pending(s)
                    s.rollback()  # changed meanwhile (a cancel); the next tick sees it
                except LeadershipLost:
                    s.rollback()
                    raise
                except Exception as exc:  # noqa: BLE001 - isolated: one job, not the tick
                    # Only this job's unfinished step is undone: the others committed theirs.
                    transitions_pending(s)
                    s.rollback()
                    self._step_failed(job_id, exc, report)
            s.commit()

    def _step_failed(self, job_id: int, exc: Exception, report: TickReport) -> None:
        """A job's reconcile raised: reported at once; failed as the job's own error once the
        same error has repeated on REPEATED_ERRORS consecutive ticks."""
        message = f"{type(exc).__name__}: {exc}"[:300]
        log.warning("reconciling job %s failed: %s", job_id, message)
        report.errors.append(f"job {job_id}: {message}")
        count, last = self._step_errors.get(job_id, (0, ""))
        count = count + 1 if last == message else 1
        self._step_errors[job_id] = (count, message)
        if count < REPEATED_ERRORS:
            return
        self._step_errors.pop(job_id, None)
        with Session(self.engine) as s:
            job = s.get(Job, job_id)
            if job is None or job.state not in ACTIVE_STATES:
                return
            if job.executor_ref is not None:
                try:
                    self.executor.stop(job.executor_ref)
                except Exception:  # noqa: BLE001 - the job is failed either way
                    log.warning("stopping job %s failed", job_id, exc_info=True)
            job.exit_code = None
            self._fail(s, job, Failure(FailureKind.USER, f"the dispatcher could not handle "
                                       f"this job: {message}"), "", report)
            s.commit()

    def _reconcile_one(self, s: Session, job: Job, report: TickReport) -> None:
        if job.executor_ref is None:
            # Claimed, and perhaps started, by a dispatcher that died before recording it.
            try:
                ref = self.executor.find(job)
            except StartUnderWay:
                return  # neither adopted nor requeued yet: a later tick asks again
            if ref is None:
                self._move(s, job, JobState.QUEUED, "dispatcher stopped before launching it")
                job.attempts = max(0, job.attempts - 1)  # the attempt never began
                return
            job.executor_ref = ref
            if self.executor.poll(ref).phase is Phase.WAITING:  # still held by Kueue
                self._move(s, job, JobState.WAITING,
                           "attempt found again after a dispatcher restart; waiting in Kueue")
            else:
                self._move(s, job, JobState.RUNNING,
                           "attempt found again after a dispatcher restart")
            report.adopted.append(job.id)
            return
        if job.cancel_requested:
            self.executor.stop(job.executor_ref)
            reason = "cancelled while running; stopped"
            self._end_attempt(s, job, "cancelled", reason, None, final="KILLED")
            self._move(s, job, JobState.CANCELLED, reason)
            report.finished.append((job.id, JobState.CANCELLED.value))
            return
        status = self.executor.poll(job.executor_ref)
        if status.phase is Phase.WAITING:
            self._hold(s, job, status)
            return
        if status.phase is Phase.RUNNING and job.state == JobState.WAITING.value:
            job.kueue_position = None
            self._move(s, job, JobState.RUNNING, "admitted by Kueue; running (charged from now)")
            return
        if status.phase is Phase.RUNNING and self.spend_guard is not None:
            why = self.spend_guard.overrun(s, job, utcnow(), self.stop_horizon_s)
            if why is not None:
                self.lease.check(s)
                self.executor.stop(job.executor_ref)  # SIGTERM first: it checkpoints
                reason = f"stopped before overspending: {why}"[:500]
                self._end_attempt(s, job, "budget_exhausted", reason, None, final="KILLED")
                self._move(s, job, JobState.BUDGET_EXHAUSTED, reason)
                report.finished.append((job.id, JobState.BUDGET_EXHAUSTED.value))
                return
        if status.phase is Phase.RUNNING:
            if self._over_time(job):
                self.executor.stop(job.executor_ref)
                status = ExecStatus(Phase.TIMEOUT, None,
                                    f"ran past its limit of {job.max_runtime_s:g} s")
            else:
                self._read_progress(job)
                return
        job.exit_code = status.exit_code
        if status.phase is Phase.EXITED and status.exit_code == 0:
            self._read_progress(job, final=True)  # its throughput informs later estimates
            self._end_attempt(s, job, "succeeded", "exit code 0", status)
            self._move(s, job, JobState.SUCCEEDED, "exit code 0")
            report.finished.append((job.id, JobState.SUCCEEDED.value))
            return
        if status.phase is Phase.EXITED and status.exit_code == PRUNED_EXIT_CODE \
                and job.sweep_id is not None:
            reason = "pruned: its study's pruner stopped it as unpromising"
            self._read_progress(job, final=True)
            self._end_attempt(s, job, "pruned", reason, status)
            self._move(s, job, JobState.PRUNED, reason)
            report.finished.append((job.id, JobState.PRUNED.value))
            return
        failure = classify(status)
        last = self.executor.logs(job.executor_ref, 1).strip()
        # Whatever is left of the attempt (a pod stuck pulling its image) goes before a retry.
        self.executor.stop(job.executor_ref)
        self._fail(s, job, failure, last, report, status)

    def _hold(self, s: Session, job: Job, status: ExecStatus) -> None:
        """The cluster holds the job (Kueue keeps its Job suspended): waiting, not running.
        A running job suspended again (Kueue preempted it for quota) is charged for the time
        it ran, and is charged again only once it runs."""
        job.kueue_position = status.position
        if job.state == JobState.RUNNING.value:
            # Kueue deleted its pods: what ran is recorded (and charged) as a part of the
            # attempt; the pods Kueue starts again resume from the job's checkpoint.
            reason = "suspended by Kueue (its quota went to another workload); waiting"
            self._end_attempt(s, job, "suspended", reason, None)
            job.started_at = None
            self._move(s, job, JobState.WAITING, reason)
        elif job.state == JobState.DISPATCHING.value:
            self._move(s, job, JobState.WAITING, "admitted to Kueue, waiting for quota")

    def _add_cost(self, job: Job, start: datetime | None, end: datetime) -> int:
        """Charges the job for its resources from ``start`` to ``end``; returns the cost."""
        if self.price is None or start is None:
            return 0
        cost = self.price(job, as_utc(start), as_utc(end))
        job.cost_micros = (job.cost_micros or 0) + cost
        return cost

    def _end_attempt(self, s: Session, job: Job, outcome: str, reason: str,
                     status: ExecStatus | None, final: str | None = None) -> None:
        """Records the ending attempt (its own start and end times when the executor knows
        them), charges the job for it, and ends its MLflow run if the attempt could not:
        ``final`` is the run's status when the job ends for good this way."""
        start = status.started_at if status is not None and status.started_at else None
        if start is None and job.started_at is not None:
            start = as_utc(job.started_at)
        end = status.ended_at if status is not None and status.ended_at else utcnow()
        cost = self._add_cost(job, start, end)
        s.add(JobAttempt(job_id=job.id, number=job.attempts, started_at=start, ended_at=end,
                         outcome=outcome, reason=reason[:500], cost_micros=cost,
                         resumed_from_step=job.resumed_from_step))
        if self.runs is not None and job.mlflow_run_id and outcome != "succeeded":
            try:
                self.runs.close_run(job.mlflow_run_id, final or "FAILED",
                                    only_if_running=final is None)
            except Exception as exc:  # noqa: BLE001 - the run's status is not worth a tick
                log.warning("ending the MLflow run of job %s failed: %s", job.id, exc)

    def _fail(self, s: Session, job: Job, failure: Failure, last_line: str,
              report: TickReport, status: ExecStatus | None = None) -> None:
        if failure.retryable and any(word in failure.reason for word in SELF_INFLICTED) \
                and self._failed_the_same_way_before(s, job, failure):
            # The same abort or out-of-memory twice is the job's own doing: another attempt
            # would only end the same way (and spend the same again).
            failure = Failure(FailureKind.USER, f"{failure.reason} (the same failure as the "
                                                "previous attempt; not retried)")
        reason = f"{failure.kind.value}: {failure.reason}"
        if last_line and last_line not in reason:
            reason += f" | {last_line}"
        if failure.kind is FailureKind.PREEMPTION:
            job.max_attempts += 1  # a preemption does not use up one of the job's attempts
        again = failure.retryable and job.attempts < job.max_attempts
        self._end_attempt(s, job, OUTCOME_OF_FAILURE[failure.kind], reason, status,
                          final=None if again else "FAILED")
        self._move(s, job, JobState.FAILED, reason[:500])
        if again:
            job.not_before = backoff_until(utcnow(), job.attempts, self.backoff_base_s)
            job.executor_ref = None
            job.progress_step = job.progress_sps = None
            self._move(s, job, JobState.QUEUED,
                       f"retry {job.attempts + 1} of {job.max_attempts} after "
                       f"{failure.kind.value} failure, not before "
                       f"{job.not_before.isoformat(timespec='seconds')}")
            report.retried.append(job.id)
        else:
            if failure.retryable:
                job.reason = f"{reason[:400]} (gave up after {job.attempts} attempts)"
                s.add(job)
            report.finished.append((job.id, JobState.FAILED.value))

    @staticmethod
    def _failed_the_same_way_before(s: Session, job: Job, failure: Failure) -> bool:
        last = s.exec(select(JobEvent.reason)
                      .where(JobEvent.job_id == job.id)
                      .where(JobEvent.to_state == JobState.FAILED.value)
                      .order_by(col(JobEvent.id).desc()).limit(1)).first()
        return last is not None and last.startswith(f"{failure.kind.value}: {failure.reason}")

    def _over_time(self, job: Job) -> bool:
        """Past max_runtime_s since the job last started running (time held by Kueue does
        not count)."""
        if job.max_runtime_s is None or job.started_at is None:
            return False
        return utcnow() - as_utc(job.started_at) > timedelta(seconds=job.max_runtime_s)

    def _read_progress(self, job: Job, final: bool = False) -> None:
        if self.progress is None or job.mlflow_run_id is None:
            return
        # One MLflow query per running job per tick would dominate the tick; ETAs need less.
        now = time.monotonic()
        if not final and now - self._progress_read_at.get(job.id, -1e9) < PROGRESS_EVERY_S:
            return
        self._progress_read_at[job.id] = now
        try:
            seen = self.progress(job.mlflow_run_id)
        except Exception as exc:  # noqa: BLE001 - progress is for ETAs; never fail a tick on it
            log.warning("progress of job %s unavailable: %s", job.id, exc)
            return
        if seen is None:
            return
        if seen.global_step != job.progress_step:
            job.progress_at = utcnow()
        job.progress_step, job.progress_sps = seen.global_step, seen.steps_per_second
        job.reward_curve = list(seen.rewards)
        if seen.eval_ratio is not None:
            job.eval_ratio = seen.eval_ratio

    # --- 2. admit ------------------------------------------------------------------------

    def _admit(self) -> list[int]:
        """One snapshot of capacity, decisions in memory, one transaction to record them.

        The claim is a conditional UPDATE (state still queued) covering every admitted job at
        once; on PostgreSQL the rows are first locked with FOR UPDATE SKIP LOCKED, so a job
        someone else is changing right now is simply left for the next tick.
        """
        self._keep_leading()
        now = utcnow()
        with Session(self.engine) as s:
            if admission_pause.current(s) is not None:
                return []  # paused: running jobs are reconciled as ever, nothing new starts
            usage, _ = active_usage(s)
            if usage.jobs >= self.limits.max_concurrent:
                return []
            checks = self.checks_for(s, now) if self.checks_for else ()
            plan = plan_queue(s, usage, self.limits, now, checks).plan
            ids = plan.admitted
            if not ids:
                return []
            if self.engine.dialect.name == "postgresql":
                ids = list(s.exec(select(Job.id).where(col(Job.id).in_(ids))  # type: ignore[call-overload]
                                  .where(Job.state == JobState.QUEUED.value)
                                  .with_for_update(skip_locked=True)).all())
            if not ids:
                return []
            claimed = transition_many(s, ids, JobState.QUEUED, JobState.DISPATCHING,
                                      "admitted", fence=self.lease.fence(), attempts=Job.attempts + 1, not_before=None,
                                      resumed_from_step=None, kueue_position=None)
            s.commit()
        order = {job_id: i for i, job_id in enumerate(plan.admitted)}
        return sorted(claimed, key=order.__getitem__)

    # --- 3. launch -----------------------------------------------------------------------

    def _launch(self, job_id: int, report: TickReport) -> None:
        self._keep_leading()
        with Session(self.engine) as s:
            job = s.get(Job, job_id)
            if job is None or job.state != JobState.DISPATCHING.value:
                return
            # Launch only as the leader, with the lease renewed just now: the launch's own
            # waits are bounded well inside what is left of it (docs/reliability.md).
            self.lease.check(s)
            try:
                ref = self.executor.launch(job)
            except LaunchError as exc:
                kind = FailureKind.INFRASTRUCTURE if exc.retryable else FailureKind.USER
                self._fail(s, job, Failure(kind, f"launch failed: {exc}"), "", report)
                s.commit()
                return
            except Exception as exc:  # noqa: BLE001 - any launch failure is visible on the job
                self._fail(s, job, Failure(FailureKind.INFRASTRUCTURE, f"launch failed: {exc}"),
                           "", report)
                s.commit()
                return
            job.executor_ref = ref
            held = getattr(self.executor, "queue_name", None)
            try:
                if held:  # Kueue admits it when its quota allows; running (and charged) then
                    self._move(s, job, JobState.WAITING,
                               f"attempt {job.attempts} handed to Kueue; waiting for quota")
                else:
                    self._move(s, job, JobState.RUNNING, f"attempt {job.attempts} launched by "
                               f"the {self.executor.name} executor")
            except StaleStateError:
                # Cancelled while launching: stop what was just started.
                self.executor.stop(ref)
                s.rollback()
                return
            s.commit()
            report.launched.append(job_id)

    # --- running --------------------------------------------------------------------------

    def start_background(self, interval_s: float,
                         on_tick: Callable[[TickReport], None] | None = None) -> Any:
        """Ticks on an APScheduler interval in a background thread (what `oppen serve` runs
        beside the API); stop it with stop_background."""
        from apscheduler.schedulers.background import BackgroundScheduler

        if self.warm_up is not None:
            # Importing MLflow and creating a fresh store take seconds; ticking at once, with
            # the warm-up beside it, starts (and restarts) dispatching that much sooner.
            threading.Thread(target=_warm_up, args=(self.warm_up,), name="dispatcher-warm-up",
                             daemon=True).start()

        def job() -> None:
            try:
                report = self.tick()
            except Exception:  # keep ticking; the next tick retries
                log.exception("dispatcher tick failed")
                return
            if on_tick is not None:
                on_tick(report)

        scheduler = BackgroundScheduler(timezone="UTC")
        # Coalesce missed ticks into one, never two at once, and skip a tick that is very late
        # rather than run a burst of them after a pause.
        scheduler.add_job(job, "interval", seconds=interval_s, coalesce=True, max_instances=1,
                          misfire_grace_time=max(1, int(interval_s * 5)),
                          next_run_time=datetime.now(UTC))  # first tick at once
        scheduler.start()
        return scheduler

    def stop_background(self, scheduler: Any) -> None:
        """Waits for a tick in progress, then gives up leadership at once."""
        scheduler.shutdown(wait=True)
        self.lease.release()

    def run(self, interval_s: float, exit_when_idle: bool = False,
            on_tick: Any = None) -> None:
        """Ticks on an APScheduler interval until SIGTERM/SIGINT (or until idle if asked)."""
        stop = threading.Event()

        def tick_done(report: TickReport) -> None:
            if on_tick is not None:
                on_tick(report)
            if exit_when_idle and report.leader and report.idle:
                stop.set()

        previous = {sig: signal.signal(sig, lambda *_: stop.set())
                    for sig in (signal.SIGTERM, signal.SIGINT)}
        scheduler = self.start_background(interval_s, tick_done)
        try:
            stop.wait()
        finally:
            self.stop_background(scheduler)
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _warm_up(warm_up: WarmUp) -> None:
    try:
        warm_up()
    except Exception as exc:  # noqa: BLE001 - a tick that needs it reports the error
        log.warning("warming up the dispatcher failed: %s", exc)
