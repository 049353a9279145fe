"""`oppen queue logs --follow`: the job's log as it grows, until the job ends."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from app.core.errors import ConfigError

WINDOW = 10_000  # lines read per poll
TERMINAL = {"succeeded", "failed", "cancelled", "budget_exhausted", "pruned"}


def new_lines(before: list[str], now: list[str]) -> list[str]:
    """The lines of ``now`` after what ``before`` already held (both the tail of one
    growing file; the window may have slid)."""
    if len(now) < WINDOW or not before:
        return now[len(before):] if now[:len(before)] == before else now
    tail = before[-3:]
    for start in range(len(now) - len(tail), -1, -1):
        if now[start:start + len(tail)] == tail:
            return now[start + len(tail):]
    return now


def follow_logs(ops: Any, job_id: int, lines: int, echo: Callable[[str], None],
                poll_s: float = 1.0, sleep: Callable[[float], None] = time.sleep) -> None:
    """Prints the last ``lines``, then each new line, until the job ends; a new attempt
    is announced and printed from its start."""
    attempt: int | None = None
    seen: list[str] = []
    first = True
    try:
        while True:
            state = ops.show_job(job_id)["state"]
            try:
                found = ops.job_logs(job_id, WINDOW)
            except ConfigError:  # no attempt has started yet
                found = None
            if found is not None:
                now = found["logs"].splitlines()
                if attempt is not None and found["attempt"] != attempt:
                    echo(f"--- attempt {found['attempt']} ---")
                    seen = []
                fresh = now[-lines:] if first else new_lines(seen, now)
                for line in fresh:
                    echo(line)
                attempt, seen, first = found["attempt"], now, False
            if state in TERMINAL:
                echo(f"--- job {job_id} {state} ---")
                return
            sleep(poll_s)
    except KeyboardInterrupt:
        return
