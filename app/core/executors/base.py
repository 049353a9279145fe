"""The executor interface the dispatcher talks to."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from app.core.models import Job


class Phase(StrEnum):
    RUNNING = "running"
    EXITED = "exited"
    LOST = "lost"  # the executor no longer knows the job: it died without a word


@dataclass(frozen=True)
class ExecStatus:
    phase: Phase
    exit_code: int | None = None
    detail: str = ""


class Executor(Protocol):
    name: str

    def launch(self, job: Job) -> str:
        """Starts the job; returns a reference that survives a dispatcher restart."""
        ...

    def poll(self, ref: str) -> ExecStatus: ...

    def stop(self, ref: str) -> None:
        """Asks the job to stop (idempotent)."""
        ...
