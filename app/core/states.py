"""Job states and the one table of legal transitions."""

from __future__ import annotations

from enum import StrEnum

from app.core.errors import InvalidTransitionError


class JobState(StrEnum):
    QUEUED = "queued"
    DISPATCHING = "dispatching"
    # Handed to the cluster, which holds it: a Kubernetes Job that Kueue keeps suspended until
    # its ClusterQueue has quota. Not running, not charged, not counted against max_runtime.
    WAITING = "waiting"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    # Stopped (checkpoint first) before a hard budget would be overspent; resumable, by
    # `queue resume`, once the budget allows.
    BUDGET_EXHAUSTED = "budget_exhausted"
    # A sweep's trial stopped early because its study's pruner judged it unpromising: a
    # final outcome of its own, not a failure (never retried, never resumed).
    PRUNED = "pruned"


TERMINAL = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED,
                      JobState.BUDGET_EXHAUSTED, JobState.PRUNED})
# Ended, but not for good: a person may send these back to the queue (`queue resume`), and
# the next attempt continues from the job's latest checkpoint.
RESUMABLE = frozenset({JobState.FAILED, JobState.BUDGET_EXHAUSTED, JobState.CANCELLED})

ALLOWED: dict[JobState, frozenset[JobState]] = {
    JobState.QUEUED: frozenset({JobState.DISPATCHING, JobState.CANCELLED}),
    # A launch that fails returns the job to the queue or fails it.
    JobState.DISPATCHING: frozenset(
        {JobState.RUNNING, JobState.WAITING, JobState.QUEUED, JobState.FAILED,
         JobState.CANCELLED}
    ),
    JobState.WAITING: frozenset({JobState.RUNNING, JobState.FAILED, JobState.CANCELLED}),
    # Kueue may suspend a running Job again (preempted for a higher-priority workload).
    JobState.RUNNING: frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED,
                                 JobState.BUDGET_EXHAUSTED, JobState.WAITING,
                                 JobState.PRUNED}),
    JobState.SUCCEEDED: frozenset(),
    JobState.PRUNED: frozenset(),
    # Retry returns a failed attempt to the queue.
    JobState.FAILED: frozenset({JobState.QUEUED}),
    JobState.CANCELLED: frozenset({JobState.QUEUED}),
    JobState.BUDGET_EXHAUSTED: frozenset({JobState.QUEUED}),
}


# How a trial's trainer says "pruned" when it exits: a code of its own (EX_TEMPFAIL's
# neighbour, unused by Python, the shell and signals), read as such only for a sweep's job.
PRUNED_EXIT_CODE = 77
# A data-parallel worker whose peer vanished mid-collective (killed, its node gone): the
# attempt failed because of the infrastructure, so it is retried (EX_TEMPFAIL).
PEER_LOST_EXIT_CODE = 75


def check_transition(current: JobState, target: JobState) -> None:
    if target not in ALLOWED[current]:
        raise InvalidTransitionError(f"a {current.value} job cannot become {target.value}")
