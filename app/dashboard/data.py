"""Everything the dashboard shows, gathered in one call from the database (and a few cheap
probes). MLflow is not queried here: the dispatcher copies each running job's progress,
reward curve and final evaluation onto its row, so a render stays fast with many jobs."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, time, timedelta
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from app.core import admission_pause
from app.core.models import Job, Sweep
from app.core.money import usd, usd_text
from app.core.planning import ACTIVE_STATES, remaining_seconds
from app.core.states import TERMINAL, JobState
from app.core.timeutil import as_utc, utcnow
from app.costs.budgets import shape_of, used_percent
from app.costs.calculator import interval_cost
from app.dashboard import health
from app.dashboard.cluster import Cluster, Node, kubernetes_cluster, local_cluster

SCHEMA_VERSION = 2
QUEUE_ROWS = 50
STALLED_AFTER_S = 600.0
FAILED_WITHIN = timedelta(hours=24)


@dataclass
class QueuedRow:
    position: int | None
    id: int
    name: str
    priority_class: str
    pending_reason: str | None
    pending_detail: str | None
    eta_start: str | None
    estimated_cost_usd: str | None


@dataclass
class RunningRow:
    id: int
    name: str
    priority_class: str
    state: str
    progress: float | None  # 0..1
    global_step: int | None
    total_timesteps: int
    steps_per_second: float | None
    elapsed_s: float | None
    eta_s: float | None
    cost_so_far_usd: str
    forecast_cost_usd: str
    reward_curve: list[float]
    mlflow_run_id: str | None
    # A waiting job (its Kubernetes Job suspended by Kueue): its place in the cluster's queue.
    kueue_position: int | None = None
    # Data-parallel workers (each a process, or a pod on a cluster); cost counts them all.
    workers: int = 1


@dataclass
class RecentRow:
    id: int
    name: str
    priority_class: str
    state: str
    duration_s: float | None
    cost_usd: str
    eval_ratio: float | None  # PPO's mean wait / the best heuristic's (< 1: better)
    reason: str | None
    mlflow_run_id: str | None


@dataclass
class SweepRow:
    id: int
    name: str
    state: str
    sampler: str
    pruner: str
    objective: str
    direction: str
    n_trials: int
    trials: dict[str, int]  # the trials' jobs by state
    best_value: float | None
    best_params: dict[str, Any]
    spent_usd: str
    max_cost_usd: str | None


@dataclass
class Alert:
    level: str  # warn | error
    kind: str  # budget | failed | stalled | dispatcher | paused
    message: str


@dataclass
class DashboardData:
    schema_version: int
    generated_at: str
    counts: dict[str, int]
    cluster: Cluster
    queue_by_class: dict[str, int]
    queued: list[QueuedRow] = field(default_factory=list)
    running: list[RunningRow] = field(default_factory=list)
    recent: list[RecentRow] = field(default_factory=list)
    costs: dict[str, Any] = field(default_factory=dict)
    alerts: list[Alert] = field(default_factory=list)
    health: list[health.Check] = field(default_factory=list)
    sweeps: list[SweepRow] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DashboardData:
        """The inverse of to_dict: a dashboard read from the API server renders the same."""
        cluster = Cluster(d["cluster"]["source"], [Node(**n) for n in d["cluster"]["nodes"]],
                          d["cluster"].get("detail", ""))
        return cls(d["schema_version"], d["generated_at"], d["counts"], cluster,
                   d["queue_by_class"], [QueuedRow(**r) for r in d["queued"]],
                   [RunningRow(**r) for r in d["running"]],
                   [RecentRow(**r) for r in d["recent"]], d["costs"],
                   [Alert(**a) for a in d["alerts"]],
                   [health.Check(**c) for c in d["health"]],
                   [SweepRow(**w) for w in d.get("sweeps", [])])


def gather(services: Any, recent: int = 10, now: datetime | None = None,
           probe_cluster: bool = True, team: str | None = None) -> DashboardData:
    """The whole dashboard; with ``team``, only that team's jobs, spend and budgets (the
    cluster and health sections are shared)."""
    now = now or utcnow()
    engine = services.engine

    def mine(stmt: Any) -> Any:
        return stmt if team is None else stmt.where(Job.team == team)

    with Session(engine) as s:
        counts = {state.value: 0 for state in JobState}
        counts.update(dict(s.exec(mine(select(Job.state, func.count())).group_by(Job.state))
                           .all()))
        by_class = dict(s.exec(mine(select(Job.priority_class, func.count())
                                    .where(Job.state == JobState.QUEUED.value))
                               .group_by(Job.priority_class)).all())
        everyone_running = s.exec(select(Job).where(col(Job.state).in_(ACTIVE_STATES))
                                  .order_by(col(Job.id))).all()
        running = [j for j in everyone_running if team is None or j.team == team]
        finished = s.exec(mine(select(Job).where(col(Job.state).in_([t.value for t in TERMINAL])))
                          .order_by(col(Job.finished_at).desc()).limit(recent)).all()
        failed_recently = s.exec(mine(select(Job).where(Job.state == JobState.FAILED.value)
                                      .where(col(Job.finished_at) >= now - FAILED_WITHIN))
                                 .order_by(col(Job.finished_at).desc()).limit(5)).all()
    data = DashboardData(SCHEMA_VERSION, now.isoformat(timespec="seconds"), counts,
                         _cluster(services, everyone_running, probe_cluster),
                         {k: by_class.get(k, 0) for k in ("urgent", "normal", "background")})
    data.queued = [QueuedRow(v.position, v.job.id, v.job.name, v.job.priority_class,
                             d["pending_reason"], d["pending_detail"], d["eta_start"],
                             d["estimated_cost_usd"])
                   for v in services.queue.list(["queued"], limit=QUEUE_ROWS, team=team)
                   for d in [v.to_dict()]]
    data.running = [_running_row(services, j, now) for j in running]
    data.recent = [RecentRow(j.id, j.name, j.priority_class, j.state,
                             (as_utc(j.finished_at) - as_utc(j.started_at)).total_seconds()
                             if j.started_at and j.finished_at else None,
                             usd_text(j.cost_micros), j.eval_ratio, j.reason, j.mlflow_run_id)
                   for j in finished]
    data.costs = _costs(services, running, now, team)
    data.sweeps = _sweeps(services, team)
    data.health = _health(services, counts)
    data.alerts = _alerts(data, running, failed_recently, now)
    paused = admission_pause.read(engine)
    if paused is not None:  # said first: it explains every queued job's wait
        data.alerts.insert(0, Alert("warn", "paused", f"{paused.sentence()}; nothing new starts "
                                                      "(oppen queue unpause)"))
    return data


def _running_row(services: Any, job: Job, now: datetime) -> RunningRow:
    total = int(job.config.get("total_timesteps", 0))
    so_far = job.cost_micros + services.budgets.attempt_cost(job, now)
    left = remaining_seconds(job, now)
    rest = interval_cost(services.pricing, now, now + timedelta(seconds=left),
                         shape_of(job)).micros
    return RunningRow(
        job.id, job.name, job.priority_class, job.state,
        min(1.0, job.progress_step / total) if job.progress_step is not None and total else None,
        job.progress_step, total, job.progress_sps,
        (now - as_utc(job.started_at)).total_seconds() if job.started_at else None,
        left if job.started_at else None, usd_text(so_far), usd_text(so_far + rest),
        list(job.reward_curve or []), job.mlflow_run_id, job.kueue_position,
        _workers(job.config))


def _cluster(services: Any, running: list[Job], probe: bool) -> Cluster:
    settings = services.settings
    if settings.executor == "kubernetes":
        if not probe:
            return Cluster("kubernetes", [], "not probed")
        try:
            api = services.executor.api_client
        except Exception as exc:  # noqa: BLE001 - no kubeconfig: shown, never fatal
            return Cluster("kubernetes", [], f"N/A: {type(exc).__name__}: {exc}"[:120])
        return kubernetes_cluster(api, settings.k8s_namespace)
    holding = [j for j in running if j.state != JobState.WAITING.value]
    return local_cluster(sum(j.cpus for j in holding), sum(j.memory_mb for j in holding),
                         sum(j.gpus for j in holding))


def _costs(services: Any, running: list[Job], now: datetime,
           team: str | None = None) -> dict[str, Any]:
    zone = services.pricing.zone
    local = now.astimezone(zone).date()
    day_start = datetime.combine(local, time(0), tzinfo=zone)
    month_start = datetime.combine(local.replace(day=1), time(0), tzinfo=zone)
    live = sum(j.cost_micros + services.budgets.attempt_cost(j, now) for j in running)
    with Session(services.engine) as s:
        def finished_since(start: datetime) -> int:
            stmt = (select(func.coalesce(func.sum(Job.cost_micros), 0))
                    .where(col(Job.finished_at) >= start))
            return int(s.exec(stmt if team is None else stmt.where(Job.team == team)).one())

        today, month = finished_since(day_start), finished_since(month_start)
    budgets = [services.budgets.status(b, now).to_dict() for b in services.budgets.list()
               if team is None or b.scope == "global" or (b.scope == "team"
                                                          and b.scope_value == team)]
    return {"today_usd": usd_text(today + live), "month_usd": usd_text(month + live),
            "currency": services.pricing.currency, "budgets": budgets}


def _health(services: Any, counts: dict[str, int]) -> list[health.Check]:
    settings = services.settings
    busy = counts.get("queued", 0) + counts.get("running", 0) + counts.get("dispatching", 0) > 0
    from app.core.lease import Lease

    current = Lease(services.engine, "dashboard", settings.lease_ttl_s).current()
    probe = services.executor.ping if settings.executor == "kubernetes" else None
    return [health.database(services.engine), health.tracking(settings.resolved_tracking_uri),
            health.lease(current, settings.lease_ttl_s, busy),
            health.executor(settings.executor, settings.logs_dir, probe)]


def _alerts(data: DashboardData, running: list[Job], failed: list[Job],
            now: datetime) -> list[Alert]:
    alerts = []
    for b in data.costs.get("budgets", []):
        if b["crossed"]:
            top = max(b["crossed"])
            alerts.append(Alert("error" if top >= 1 else "warn", "budget",
                                f"budget {b['name']} at {used_percent(b['used_fraction'])} "
                                f"of {usd(b['limit_usd'])} (past {top * 100:.0f}%)"))
    for job in failed:
        alerts.append(Alert("warn", "failed", f"job {job.id} '{job.name}' failed: "
                                              f"{(job.reason or '')[:80]}"))
    for job in running:
        last = job.progress_at or job.started_at
        if job.state == JobState.RUNNING.value and last is not None:
            quiet = (now - as_utc(last)).total_seconds()
            if quiet > STALLED_AFTER_S:
                alerts.append(Alert("warn", "stalled", f"job {job.id} '{job.name}' has made no "
                                                       f"progress for {quiet / 60:.0f} min"))
    dispatcher = next(c for c in data.health if c.component == "dispatcher")
    if dispatcher.status == "error":
        alerts.append(Alert("error", "dispatcher", f"{dispatcher.detail}; queued jobs will "
                                                   "not start (oppen dispatcher run)"))
    return alerts


SWEEP_ROWS = 5


def _sweeps(services: Any, team: str | None) -> list[SweepRow]:
    """The sweeps still searching, then the latest ended ones: their trials' jobs by state,
    their best value so far and their spend."""
    with Session(services.engine) as s:
        stmt = select(Sweep).order_by(col(Sweep.state) != "running", col(Sweep.id).desc())
        if team is not None:
            stmt = stmt.where(Sweep.team == team)
        sweeps = s.exec(stmt.limit(SWEEP_ROWS)).all()
        if not sweeps:
            return []
        rows = s.exec(select(Job.sweep_id, Job.state, func.count(), func.sum(Job.cost_micros))
                      .where(col(Job.sweep_id).in_([w.id for w in sweeps]))
                      .group_by(Job.sweep_id, Job.state)).all()
    by_sweep: dict[int, dict[str, int]] = {}
    spent: dict[int, int] = {}
    for sweep_id, state, n, cost in rows:
        by_sweep.setdefault(sweep_id, {})[state] = n
        spent[sweep_id] = spent.get(sweep_id, 0) + int(cost or 0)
    out = []
    for w in sweeps:
        best_value, best_params = services.sweeps.best_so_far(w)
        out.append(SweepRow(w.id, w.name, w.state, w.sampler, w.pruner, w.objective,  # type: ignore[arg-type]
                            w.direction, w.n_trials, by_sweep.get(w.id, {}), best_value,  # type: ignore[arg-type]
                            best_params, usd_text(spent.get(w.id, 0)),  # type: ignore[arg-type]
                            usd_text(w.max_cost_micros) if w.max_cost_micros is not None
                            else None))
    return out


def _workers(config: dict[str, Any] | None) -> int:
    value = (config or {}).get("num_workers", 1)
    return value if isinstance(value, int) and value > 1 else 1
