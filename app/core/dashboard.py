"""The dashboard: one function gathers the data (the agent's tool returns the same), and
renderers turn it into a rich view or JSON."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from sqlmodel import Session, col, select

from app.core.models import Job
from app.core.queue import queue_order
from app.core.states import TERMINAL, JobState
from app.core.timeutil import as_utc, utcnow

SCHEMA_VERSION = 1


@dataclass
class JobRow:
    id: int
    name: str
    state: str
    priority_class: str
    position: int | None = None
    elapsed_s: float | None = None
    duration_s: float | None = None
    reason: str | None = None
    mlflow_run_id: str | None = None


@dataclass
class DashboardData:
    schema_version: int
    generated_at: str
    counts: dict[str, int]
    queued: list[JobRow] = field(default_factory=list)
    running: list[JobRow] = field(default_factory=list)
    finished: list[JobRow] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def gather(engine: Any, recent: int = 10) -> DashboardData:
    now = utcnow()
    with Session(engine) as s:
        counts = {state.value: 0 for state in JobState}
        for job in s.exec(select(Job.state)).all():
            counts[job] = counts.get(job, 0) + 1
        queued = s.exec(select(Job).where(Job.state == JobState.QUEUED.value)
                        .order_by(*queue_order()).limit(50)).all()
        running = s.exec(select(Job).where(col(Job.state).in_(
            [JobState.DISPATCHING.value, JobState.RUNNING.value])).order_by(col(Job.id))).all()
        finished = s.exec(select(Job).where(col(Job.state).in_([t.value for t in TERMINAL]))
                          .order_by(col(Job.finished_at).desc()).limit(recent)).all()
    data = DashboardData(SCHEMA_VERSION, now.isoformat(), counts)
    data.queued = [JobRow(j.id, j.name, j.state, j.priority_class, position=i + 1)
                   for i, j in enumerate(queued)]
    data.running = [JobRow(j.id, j.name, j.state, j.priority_class,
                           elapsed_s=(now - as_utc(j.started_at)).total_seconds()
                           if j.started_at else None, mlflow_run_id=j.mlflow_run_id)
                    for j in running]
    data.finished = [JobRow(j.id, j.name, j.state, j.priority_class,
                            duration_s=(as_utc(j.finished_at) - as_utc(j.started_at))
                            .total_seconds() if j.started_at and j.finished_at else None,
                            reason=j.reason, mlflow_run_id=j.mlflow_run_id)
                     for j in finished]
    return data


STATE_STYLE = {"succeeded": "green", "failed": "red", "cancelled": "yellow",
               "running": "cyan", "dispatching": "cyan", "queued": "white"}


def _fmt_s(value: float | None) -> str:
    if value is None:
        return "N/A"
    minutes, seconds = divmod(int(value), 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def render(data: DashboardData, console: Console) -> None:
    summary = "  ".join(f"{k}: {v}" for k, v in data.counts.items())
    queued = Table(title="Queued", expand=True)
    for c in ("pos", "id", "name", "priority"):
        queued.add_column(c)
    for r in data.queued:
        queued.add_row(str(r.position), str(r.id), r.name, r.priority_class)
    running = Table(title="Running", expand=True)
    for c in ("id", "name", "priority", "state", "elapsed", "mlflow run"):
        running.add_column(c)
    for r in data.running:
        running.add_row(str(r.id), r.name, r.priority_class, r.state, _fmt_s(r.elapsed_s),
                        (r.mlflow_run_id or "N/A")[:12])
    finished = Table(title="Recent", expand=True)
    for c in ("id", "name", "priority", "outcome", "duration", "reason"):
        finished.add_column(c)
    for r in data.finished:
        finished.add_row(str(r.id), r.name, r.priority_class,
                         f"[{STATE_STYLE.get(r.state, 'white')}]{r.state}[/]",
                         _fmt_s(r.duration_s), (r.reason or "")[:60])
    console.print(Panel(Group(summary, queued, running, finished), title="Oppen dashboard"))
