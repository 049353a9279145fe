"""What the job domain needs from the layers above it, as small Protocols. The composition
root (app/services.py) hands QueueService an implementation of each: the costs layer prices
jobs and gates them on budgets, the training layer checks training options."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlmodel import Session

from app.core.admission import AdmissionCheck
from app.core.models import Job
from app.core.submission import JobSpec


@dataclass(frozen=True)
class Estimate:
    """A job's expected duration and its price, in micro-dollars, if it starts when asked."""

    duration_s: float
    cost_micros: int


class Estimator(Protocol):
    def estimate(self, spec: JobSpec, now: datetime | None = None) -> Estimate:
        """Duration and price of ``spec`` started at ``now`` (or its not_before if later)."""
        ...


@dataclass
class Decision:
    """A submission's verdict: warnings from soft budgets; refusals from hard ones."""

    warnings: list[str] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)


class BudgetGate(Protocol):
    def lock_and_check(self, session: Session, rows: Sequence[dict[str, Any]],
                       now: datetime) -> Decision:
        """Locks the budgets the rows fall under (inside the storing transaction) and says
        which would be overspent by their estimated costs."""
        ...

    def refusal(self, specs: Sequence[JobSpec], refusals: list[str]) -> str:
        """The message for a refused submission, with what would fit instead."""
        ...


class SpendGuard(Protocol):
    def overrun(self, session: Session, job: Job, now: datetime,
                horizon_s: float) -> str | None:
        """Why the running ``job`` must stop now: its hard budgets' spend so far, plus what
        every running job in their scope spends in the next ``horizon_s``, would pass a
        limit. None lets it run."""
        ...


class RunCloser(Protocol):
    def close_run(self, run_id: str, status: str, only_if_running: bool) -> None:
        """Ends a job's MLflow run with ``status`` (FAILED, KILLED): an attempt killed
        outright never ends its own run. ``only_if_running`` leaves a run its trainer already
        ended alone (between attempts); without it, the job's final verdict is the run's."""
        ...


class SweepDriver(Protocol):
    def step(self) -> list[str]:
        """The leader's sweep step, once a tick between reconciling and admitting: tells
        each study how its trials' jobs ended and queues new trials where the study asks for
        them. Idempotent, so a crash anywhere leaves nothing for the next step to undo.
        Returns one line per study that could not be stepped (for /health)."""
        ...


# Admission checks (hard budgets) reading through one session at one instant: what the
# dispatcher admits by and `queue list` explains by.
ChecksFactory = Callable[[Session, datetime], Sequence[AdmissionCheck]]

# Checks and normalises a job's training options; raises ConfigError naming the option.
ConfigValidator = Callable[[dict[str, Any]], dict[str, Any]]
