"""The one view of a job that people and programs see: the CLI, the API (``JobOut`` is its
schema) and the agent's tools all show :meth:`JobView.to_dict`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.core.admission import Pending
from app.core.models import Job, JobAttempt, JobEvent
from app.core.money import usd_text
from app.core.timeutil import as_utc


def iso(at: datetime | None) -> str | None:
    """UTC with its offset, whichever database the time came back from."""
    return as_utc(at).isoformat() if at is not None else None


def _dollars(micros: int | None) -> str | None:
    return None if micros is None else usd_text(micros)


@dataclass(frozen=True)
class JobView:
    """A job as shown to people: its row, queue position, why it waits, and history."""

    job: Job
    position: int | None
    events: list[JobEvent]
    pending: Pending | None = None
    eta_start: datetime | None = None
    history: list[JobAttempt] | None = None

    def attempt_history(self) -> list[dict[str, Any]]:
        """Each ended attempt, then the one under way (if any), oldest first."""
        rows = [{"number": a.number, "started_at": iso(a.started_at), "ended_at": iso(a.ended_at),
                 "outcome": a.outcome, "reason": a.reason,
                 "resumed_from_step": a.resumed_from_step, "cost_usd": _dollars(a.cost_micros)}
                for a in self.history or []]
        j = self.job
        if j.state in ("dispatching", "waiting", "running") and j.attempts:
            rows.append({"number": j.attempts, "started_at": iso(j.started_at), "ended_at": None,
                         "outcome": j.state, "reason": "",
                         "resumed_from_step": j.resumed_from_step, "cost_usd": None})
        return rows

    def to_dict(self) -> dict[str, Any]:
        j = self.job
        return {
            "id": j.id,
            "name": j.name,
            "state": j.state,
            "priority_class": j.priority_class,
            "priority": j.priority,
            "team": j.team,
            "project": j.project,
            "position": self.position,
            "pending_reason": self.pending.reason.value if self.pending else None,
            "pending_detail": self.pending.detail if self.pending else None,
            "eta_start": self.eta_start.isoformat(timespec="seconds") if self.eta_start else None,
            "cpus": j.cpus,
            "memory_mb": j.memory_mb,
            "gpus": j.gpus,
            "created_at": iso(j.created_at),
            "started_at": iso(j.started_at),
            "finished_at": iso(j.finished_at),
            "attempts": j.attempts,
            "max_attempts": j.max_attempts,
            "not_before": iso(j.not_before),
            "max_runtime_s": j.max_runtime_s,
            "estimated_duration_s": j.estimated_duration_s,
            "estimated_cost_usd": _dollars(j.estimated_cost_micros),
            "cost_usd": _dollars(j.cost_micros),
            "spot": j.spot,
            "kueue_position": j.kueue_position,
            "resumed_from_step": j.resumed_from_step,
            "attempt_history": self.attempt_history(),
            "progress_step": j.progress_step,
            "progress_sps": j.progress_sps,
            "eval_ratio": j.eval_ratio,
            "exit_code": j.exit_code,
            "reason": j.reason,
            "mlflow_run_id": j.mlflow_run_id,
            "config": j.config,
            "events": [
                {"at": iso(e.at), "from": e.from_state, "to": e.to_state, "reason": e.reason}
                for e in self.events
            ],
        }


