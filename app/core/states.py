"""Job states and the one table of legal transitions."""

from __future__ import annotations

from enum import StrEnum

from app.core.errors import InvalidTransitionError


class JobState(StrEnum):
    QUEUED = "queued"
    DISPATCHING = "dispatching"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    # Stopped (checkpoint first) before a hard budget would be overspent; resumable, by
    # `queue retry`, once the budget allows.
    BUDGET_EXHAUSTED = "budget_exhausted"


TERMINAL = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED,
                      JobState.BUDGET_EXHAUSTED})
# Ended, but not for good: a person may send these back to the queue.
RESUMABLE = frozenset({JobState.FAILED, JobState.BUDGET_EXHAUSTED})

ALLOWED: dict[JobState, frozenset[JobState]] = {
    JobState.QUEUED: frozenset({JobState.DISPATCHING, JobState.CANCELLED}),
    # A launch that fails returns the job to the queue or fails it.
    JobState.DISPATCHING: frozenset(
        {JobState.RUNNING, JobState.QUEUED, JobState.FAILED, JobState.CANCELLED}
    ),
    JobState.RUNNING: frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED,
                                 JobState.BUDGET_EXHAUSTED}),
    JobState.SUCCEEDED: frozenset(),
    # Retry returns a failed attempt to the queue.
    JobState.FAILED: frozenset({JobState.QUEUED}),
    JobState.CANCELLED: frozenset(),
    JobState.BUDGET_EXHAUSTED: frozenset({JobState.QUEUED}),
}


def check_transition(current: JobState, target: JobState) -> None:
    if target not in ALLOWED[current]:
        raise InvalidTransitionError(f"a {current.value} job cannot become {target.value}")
