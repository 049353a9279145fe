"""Why an attempt ended, and whether trying again can help.

A configuration or user error (exit code 2, or a crash of the training code itself) fails the
job at once: running it again gives the same answer. Infrastructure trouble (a signal, OOM, a
lost node or process, an evicted pod, an image that cannot be pulled) is retried with
exponential backoff up to the job's ``max_attempts``. A preemption (a spot node reclaimed, a
pod evicted or disrupted, its node gone) is retried too, and does not use up an attempt: the
job did nothing wrong, and resumes from its latest checkpoint (as SkyPilot's managed jobs
recover). Running past ``max_runtime_s`` is a timeout and is not retried.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from app.core.executors.base import ExecStatus, Phase
from app.core.states import PEER_LOST_EXIT_CODE

CONFIG_ERROR_EXIT = 2
# The training process exits 128+15 after checkpointing on SIGTERM (a preempted pod).
SIGTERM_EXIT = 143
BACKOFF_BASE_S = 30.0
BACKOFF_CAP_S = 30 * 60.0


class FailureKind(StrEnum):
    USER = "user"
    INFRASTRUCTURE = "infrastructure"
    PREEMPTION = "preemption"
    TIMEOUT = "timeout"


# Kubernetes words for infrastructure trouble, as they appear in container states, pod
# reasons and Job conditions.
INFRA_REASONS = ("OOMKilled", "ImagePullBackOff", "ErrImagePull", "DeletedByController",
                 "Shutdown", "Terminated by node")
# ... and for capacity taken away: the pod's DisruptionTarget condition (preemption by the
# scheduler, a spot reclaim's eviction, a taint), an eviction, a node that is gone.
PREEMPTION_REASONS = ("DisruptionTarget", "Evicted", "EvictionByEvictionAPI",
                      "PreemptionByScheduler", "PreemptionByKubeScheduler", "Preempt",
                      "NodeLost", "DeletionByTaintManager", "TerminationByKubelet",
                      "node is gone")


@dataclass(frozen=True)
class Failure:
    kind: FailureKind
    reason: str

    @property
    def retryable(self) -> bool:
        return self.kind in (FailureKind.INFRASTRUCTURE, FailureKind.PREEMPTION)


def classify(status: ExecStatus) -> Failure:
    """Classifies an attempt that did not exit 0."""
    detail = status.detail
    if status.phase is Phase.TIMEOUT:
        return Failure(FailureKind.TIMEOUT, detail or "ran past its time limit")
    if status.phase is Phase.LOST:
        return Failure(FailureKind.INFRASTRUCTURE, detail or "the executor lost the job")
    if any(word in detail for word in PREEMPTION_REASONS):
        return Failure(FailureKind.PREEMPTION, detail)
    if any(word in detail for word in INFRA_REASONS):
        return Failure(FailureKind.INFRASTRUCTURE, detail)
    code = status.exit_code
    what = f"exit code {code}" + (f"; {detail}" if detail else "")
    if code is None:
        return Failure(FailureKind.INFRASTRUCTURE, detail or "ended without an exit code")
    if code < 0 or code in (137, SIGTERM_EXIT, PEER_LOST_EXIT_CODE):
        return Failure(FailureKind.INFRASTRUCTURE, what)  # killed from outside
    if code == CONFIG_ERROR_EXIT:
        return Failure(FailureKind.USER, f"configuration error ({what})")
    return Failure(FailureKind.USER, f"the training process failed ({what})")


def backoff_until(now: datetime, attempts: int, base_s: float = BACKOFF_BASE_S) -> datetime:
    """``base_s`` (30 s) after the first failure, doubling each time, at most 30 minutes."""
    delay = min(BACKOFF_CAP_S, base_s * 2 ** max(0, attempts - 1))
    return now + timedelta(seconds=delay)
