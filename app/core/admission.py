"""Admission: which queued jobs may start now, and why each of the others waits.

Pure functions over a snapshot, so the dispatcher (deciding), `oppen queue list` (explaining)
and the tests all use the same rules. The dispatcher takes one snapshot of capacity per tick,
tracks it here in memory while deciding, and records every decision in one transaction.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from app.core.priority import PRIORITY_CLASSES


class PendingReason(StrEnum):
    NEXT_TICK = "next-tick"  # admissible now; the next dispatcher tick starts it
    CONCURRENCY = "concurrency-limit"
    QUOTA = "resource-quota"
    CLASS_QUOTA = "class-quota"
    BUDGET = "budget"
    AHEAD = "higher-priority-ahead"
    BACKOFF = "backoff"
    SCHEDULED = "scheduled-start"
    PAUSED = "admission-paused"


@dataclass(frozen=True)
class Limits:
    max_concurrent: int = 3
    max_cpus: float | None = None
    max_memory_mb: int | None = None
    max_gpus: int | None = None
    # Per priority class, the GPUs its running jobs may hold together.
    class_gpu_quota: dict[str, int] = field(default_factory=lambda: {"background": 1})
    # Priority points a queued job gains per hour of waiting (0: no aging), capped at urgent.
    aging_per_hour: float = 0.0


@dataclass(frozen=True)
class Candidate:
    """A queued job, with only what admission looks at."""

    id: int
    priority_class: str
    priority: int
    created_at: datetime
    cpus: float
    memory_mb: int
    gpus: int
    not_before: datetime | None = None
    team: str = "default"
    project: str = "default"
    estimated_cost_micros: int | None = None
    estimated_duration_s: float | None = None
    attempts: int = 0
    sweep_id: int | None = None  # a trial's sweep, whose cost cap admission checks too


@dataclass
class Usage:
    """What running (and just-admitted) jobs hold."""

    jobs: int = 0
    cpus: float = 0.0
    memory_mb: int = 0
    gpus: int = 0
    gpus_by_class: dict[str, int] = field(default_factory=dict)

    def add(self, c: Candidate) -> None:
        self.jobs += 1
        self.cpus += c.cpus
        self.memory_mb += c.memory_mb
        self.gpus += c.gpus
        self.gpus_by_class[c.priority_class] = self.gpus_by_class.get(c.priority_class, 0) + c.gpus


class AdmissionCheck(Protocol):
    """A further rule (budgets): None admits, a string says why the job must wait.

    Called in admission order; ``admit`` tells the check a job was admitted, so it can count
    what that job commits before judging the next one."""

    def refuse(self, candidate: Candidate) -> str | None: ...

    def admit(self, candidate: Candidate) -> None: ...


@dataclass(frozen=True)
class Pending:
    reason: PendingReason
    detail: str


@dataclass
class Plan:
    admitted: list[int] = field(default_factory=list)
    pending: dict[int, Pending] = field(default_factory=dict)
    order: list[int] = field(default_factory=list)  # every candidate, in admission order


def effective_priority(c: Candidate, now: datetime, aging_per_hour: float) -> float:
    if aging_per_hour <= 0:
        return float(c.priority)
    waited_h = max(0.0, (now - c.created_at).total_seconds() / 3600)
    # Aging lifts a job up to urgent, never past it; a job moved to the front (a key above
    # urgent's) keeps its place.
    cap = max(float(max(PRIORITY_CLASSES.values())), float(c.priority))
    return min(cap, c.priority + aging_per_hour * waited_h)


def admission_order(candidates: Iterable[Candidate], now: datetime,
                    aging_per_hour: float = 0.0) -> list[Candidate]:
    """Highest (effective) priority first, then first submitted (FIFO within a class)."""
    return sorted(candidates,
                  key=lambda c: (-effective_priority(c, now, aging_per_hour), c.created_at, c.id))


def _quota_shortfall(c: Candidate, usage: Usage, limits: Limits) -> str | None:
    checks = (("CPU", c.cpus, usage.cpus, limits.max_cpus),
              ("memory MB", c.memory_mb, usage.memory_mb, limits.max_memory_mb),
              ("GPU", c.gpus, usage.gpus, limits.max_gpus))
    for label, wanted, used, limit in checks:
        if limit is not None and wanted > 0 and used + wanted > limit:
            return f"needs {wanted:g} {label}, {max(0, limit - used):g} of {limit:g} free"
    return None


class Planner:
    """Decides candidates fed in admission order against one snapshot of usage (which it
    updates in memory), so the dispatcher can read the queue in chunks and stop as soon as
    nothing more can start.

    A job that does not fit the overall quota holds back everything behind it, so large
    jobs are not starved by a stream of small ones; a job held by its class's GPU quota, its
    budget or a retry backoff does not hold back others.
    """

    def __init__(self, usage: Usage, limits: Limits, now: datetime,
                 checks: Sequence[AdmissionCheck] = ()) -> None:
        self.usage, self.limits, self.now, self.checks = usage, limits, now, checks
        self.plan = Plan()
        self.blocker: int | None = None
        self.fed: list[Candidate] = []
        self._seen: set[int] = set()

    @property
    def saturated(self) -> bool:
        """Nothing further in the queue can be admitted on this tick."""
        return self.blocker is not None or self.usage.jobs >= self.limits.max_concurrent

    def feed(self, ordered: Iterable[Candidate]) -> None:
        for c in ordered:
            if c.id not in self._seen:
                self._seen.add(c.id)
                self.fed.append(c)
                self._decide(c)

    def _decide(self, c: Candidate) -> None:
        plan, usage, limits = self.plan, self.usage, self.limits
        plan.order.append(c.id)
        if c.not_before is not None and c.not_before > self.now:
            when = c.not_before.isoformat(timespec="seconds")
            plan.pending[c.id] = (Pending(PendingReason.BACKOFF, f"retry not before {when}")
                                  if c.attempts else
                                  Pending(PendingReason.SCHEDULED, f"asked to start at {when}"))
            return
        if self.blocker is not None:
            plan.pending[c.id] = Pending(PendingReason.AHEAD,
                                         f"job {self.blocker} is first in line for resources")
            return
        if usage.jobs >= limits.max_concurrent:
            plan.pending[c.id] = Pending(PendingReason.CONCURRENCY,
                                         f"{usage.jobs} of {limits.max_concurrent} jobs running")
            return
        class_quota = limits.class_gpu_quota.get(c.priority_class)
        held = usage.gpus_by_class.get(c.priority_class, 0)
        if class_quota is not None and c.gpus > 0 and held + c.gpus > class_quota:
            plan.pending[c.id] = Pending(
                PendingReason.CLASS_QUOTA,
                f"{c.priority_class} jobs may hold {class_quota} GPU(s); {held} held")
            return
        shortfall = _quota_shortfall(c, usage, limits)
        if shortfall:
            plan.pending[c.id] = Pending(PendingReason.QUOTA, shortfall)
            self.blocker = c.id
            return
        refusal = next((why for check in self.checks if (why := check.refuse(c))), None)
        if refusal:
            plan.pending[c.id] = Pending(PendingReason.BUDGET, refusal)
            return
        for check in self.checks:
            check.admit(c)
        usage.add(c)
        plan.admitted.append(c.id)


def plan_admission(candidates: Iterable[Candidate], usage: Usage, limits: Limits,
                   now: datetime, checks: Sequence[AdmissionCheck] = ()) -> Plan:
    """Decides every candidate (in any order given) against one snapshot of usage."""
    planner = Planner(usage, limits, now, checks)
    planner.feed(admission_order(candidates, now, limits.aging_per_hour))
    return planner.plan


def estimate_starts(running_remaining_s: Iterable[float], queued: Sequence[tuple[int, float]],
                    slots: int, now_s: float = 0.0) -> dict[int, float]:
    """Seconds from now until each queued job should start, assuming it runs in admission
    order on the first free of ``slots`` (the concurrency limit) and takes its estimate."""
    free_at = sorted(max(0.0, r) for r in running_remaining_s)[:slots]
    free_at += [now_s] * (slots - len(free_at))
    heapq.heapify(free_at)
    starts: dict[int, float] = {}
    for job_id, duration in queued:
        start = heapq.heappop(free_at)
        starts[job_id] = start
        heapq.heappush(free_at, start + max(0.0, duration))
    return starts
