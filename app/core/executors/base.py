"""The executor interface the dispatcher talks to."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from app.core.models import Job


class Phase(StrEnum):
    RUNNING = "running"
    EXITED = "exited"
    LOST = "lost"  # the executor no longer knows the job: it died without a word
    TIMEOUT = "timeout"  # stopped by a deadline (e.g. a Job's activeDeadlineSeconds)
    # Accepted but held by the cluster: a Job that Kueue keeps suspended until there is quota.
    WAITING = "waiting"


@dataclass(frozen=True)
class ExecStatus:
    phase: Phase
    exit_code: int | None = None
    detail: str = ""
    # The attempt's own start and end as its process (or pod) recorded them, when known: an
    # attempt is charged for the time it ran, not until the dispatcher noticed its end.
    started_at: datetime | None = None
    ended_at: datetime | None = None
    # WAITING only: the workload's place in its queue (Kueue's visibility API), when known.
    position: int | None = None


class LaunchError(Exception):
    """The executor refused to start an attempt. ``retryable``: trouble of the
    infrastructure (quota exhausted, server error) rather than of the job."""

    def __init__(self, message: str, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class StartUnderWay(Exception):
    """``find`` cannot tell yet whether an attempt started: its start may still be under way
    (a local runner that has not written its pid file). Ask again on a later tick; deciding
    "never started" now would launch the job a second time."""


class Executor(Protocol):
    name: str

    def launch(self, job: Job) -> str:
        """Starts the job; returns a reference that survives a dispatcher restart."""
        ...

    def find(self, job: Job) -> str | None:
        """The reference of the job's current attempt if it was started (by a dispatcher
        that died before recording it), else None; raises StartUnderWay while that cannot be
        told yet. Every attempt has a name derived from the job id and attempt number, so
        this never confuses attempts."""
        ...

    def poll(self, ref: str) -> ExecStatus: ...

    def stop(self, ref: str) -> None:
        """Asks the job to stop (idempotent)."""
        ...

    def logs(self, ref: str, lines: int = 50) -> str:
        """The last lines the attempt wrote ("" when there are none)."""
        ...
