"""The dispatcher: each tick reconciles running jobs, admits queued ones in one batch, and
launches them. Exactly one dispatcher leads at a time (see lease.py)."""

from __future__ import annotations

import logging
import signal
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from app.core.errors import StaleStateError
from app.core.executors.base import Executor, Phase
from app.core.lease import Lease
from app.core.models import Job
from app.core.queue import queue_order, transition
from app.core.states import JobState

log = logging.getLogger(__name__)

ACTIVE = (JobState.DISPATCHING.value, JobState.RUNNING.value)


@dataclass
class TickReport:
    leader: bool = True
    finished: list[tuple[int, str]] = field(default_factory=list)
    launched: list[int] = field(default_factory=list)
    queued: int = 0
    running: int = 0

    @property
    def idle(self) -> bool:
        """Nothing queued or running, as seen by a leader (a follower sees nothing)."""
        return self.leader and self.queued == 0 and self.running == 0


class Dispatcher:
    def __init__(self, engine: Engine, executor: Executor, lease: Lease,
                 max_concurrent: int = 3) -> None:
        self.engine = engine
        self.executor = executor
        self.lease = lease
        self.max_concurrent = max_concurrent

    def tick(self) -> TickReport:
        if not self.lease.acquire():
            return TickReport(leader=False)
        report = TickReport()
        self._reconcile(report)
        to_launch = self._admit()
        for job_id in to_launch:
            self._launch(job_id, report)
        with Session(self.engine) as s:
            counts = dict(s.exec(select(Job.state, func.count()).group_by(Job.state)).all())
        report.queued = counts.get(JobState.QUEUED.value, 0)
        report.running = sum(counts.get(state, 0) for state in ACTIVE)
        return report

    def _reconcile(self, report: TickReport) -> None:
        with Session(self.engine) as s:
            jobs = s.exec(select(Job).where(col(Job.state).in_(ACTIVE))).all()
            for job in jobs:
                if job.executor_ref is None:
                    # Claimed but never launched (a crash between the two): back to the queue.
                    transition(s, job, JobState.QUEUED, "dispatcher restarted before launch")
                    continue
                if job.cancel_requested:
                    self.executor.stop(job.executor_ref)
                    transition(s, job, JobState.CANCELLED, "cancelled while running")
                    report.finished.append((job.id, JobState.CANCELLED.value))
                    continue
                status = self.executor.poll(job.executor_ref)
                if status.phase is Phase.RUNNING:
                    continue
                job.exit_code = status.exit_code
                if status.phase is Phase.EXITED and status.exit_code == 0:
                    transition(s, job, JobState.SUCCEEDED, "exit code 0")
                else:
                    why = (f"exit code {status.exit_code}" if status.phase is Phase.EXITED
                           else "lost")
                    tail = getattr(self.executor, "log_tail", None)
                    last = tail(job.executor_ref, 1) if tail else ""
                    reason = "; ".join(p for p in (why, status.detail, last) if p)
                    transition(s, job, JobState.FAILED, reason[:500])
                report.finished.append((job.id, job.state))
            s.commit()

    def _admit(self) -> list[int]:
        """One snapshot, decisions in memory, one transaction to record them all."""
        with Session(self.engine) as s:
            active = s.exec(select(func.count()).where(col(Job.state).in_(ACTIVE))).one()
            free = self.max_concurrent - active
            if free <= 0:
                return []
            candidates = s.exec(
                select(Job).where(Job.state == JobState.QUEUED.value)
                .order_by(*queue_order()).limit(free)
            ).all()
            admitted = []
            for job in candidates:
                try:
                    transition(s, job, JobState.DISPATCHING, "admitted: capacity available")
                except StaleStateError:
                    continue  # cancelled a moment ago by someone else
                admitted.append(job.id)
            s.commit()
            return admitted

    def _launch(self, job_id: int, report: TickReport) -> None:
        with Session(self.engine) as s:
            job = s.get(Job, job_id)
            assert job is not None
            try:
                ref = self.executor.launch(job)
            except Exception as exc:  # noqa: BLE001 - any launch failure fails the job visibly
                transition(s, job, JobState.FAILED, f"launch failed: {exc}")
                s.commit()
                report.finished.append((job_id, JobState.FAILED.value))
                return
            job.executor_ref = ref
            job.attempts += 1
            transition(s, job, JobState.RUNNING, f"launched by {self.executor.name} executor")
            s.commit()
            report.launched.append(job_id)

    def run(self, interval_s: float, exit_when_idle: bool = False,
            on_tick: Any = None) -> None:
        """Ticks on an APScheduler interval until SIGTERM/SIGINT (or until idle if asked)."""
        from apscheduler.schedulers.background import BackgroundScheduler

        stop = threading.Event()

        def job() -> None:
            try:
                report = self.tick()
            except Exception:  # keep ticking; the next tick retries
                log.exception("dispatcher tick failed")
                return
            if on_tick is not None:
                on_tick(report)
            if exit_when_idle and report.leader and report.idle:
                stop.set()

        scheduler = BackgroundScheduler(timezone="UTC")
        scheduler.add_job(job, "interval", seconds=interval_s, coalesce=True, max_instances=1,
                          misfire_grace_time=max(1, int(interval_s * 5)),
                          next_run_time=datetime.now(UTC))  # first tick at once
        previous = {sig: signal.signal(sig, lambda *_: stop.set())
                    for sig in (signal.SIGTERM, signal.SIGINT)}
        scheduler.start()
        try:
            stop.wait()
        finally:
            scheduler.shutdown(wait=True)
            self.lease.release()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
