"""Cost before, during and after a job: estimates, forecasts, reports, advice, comparisons.

A thin layer over the pricing calculator, the budgets, the queue and MLflow; the CLI, the
dashboard and the agent's tools call it.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select

from app.core.errors import ConfigError
from app.core.models import Job
from app.core.money import usd, usd_text
from app.core.planning import ACTIVE_STATES, remaining_seconds
from app.core.ports import ConfigValidator
from app.core.queue import QueueService
from app.core.states import JobState
from app.core.timeutil import as_utc, utcnow
from app.core.tracking import Tracker
from app.costs.budgets import BudgetService, shape_of
from app.costs.calculator import Shape, interval_cost
from app.costs.forecast import Throughput, forecast, forecast_new_job, prior_throughput
from app.costs.history import comparable_throughput, job_history_throughput, live_progress
from app.costs.periods import calendar_period
from app.costs.pricing import Pricing
from app.costs.windows import next_off_peak

PERIODS = ("day", "week", "month")
GROUPS = ("team", "project", "priority", "status")
QUALITY_METRIC = "eval/ppo_vs_best_heuristic_wait_ratio"
REWARD_METRIC = "charts/episodic_return"


@dataclass
class CostService:
    pricing: Pricing
    queue: QueueService
    budgets: BudgetService
    tracker: Tracker | None = None
    # Checks and completes training options (the queue's own validator, from the root).
    validate_config: ConfigValidator | None = None

    def _options(self, config: dict[str, Any]) -> dict[str, Any]:
        return self.validate_config(config) if self.validate_config else dict(config)

    # --- throughput --------------------------------------------------------------------------

    def throughput(self, config: dict[str, Any], cpus: float | None = None,
                   gpus: int | None = None) -> Throughput:
        """Oppen's own finished jobs of the same kind first (what the queue's estimates use),
        then comparable MLflow runs (ad-hoc `oppen train` runs too), then the prior."""
        with Session(self.queue.engine) as s:
            own = job_history_throughput(s, config, cpus, gpus)
        if own is not None:
            return own
        if self.tracker is not None:
            try:
                found = comparable_throughput(self.tracker, config)
            except Exception:  # noqa: BLE001 - no store yet, or unreachable: use the prior
                found = None
            if found is not None:
                return found
        return prior_throughput()

    # --- estimates ---------------------------------------------------------------------------

    def estimate_shape(self, shape: Shape, start: datetime | None = None,
                       hours: float | None = None, timesteps: int | None = None,
                       config: dict[str, Any] | None = None) -> dict[str, Any]:
        """Price a resource shape for a duration, or for a number of timesteps (duration
        from comparable runs, with an interval)."""
        start = start or utcnow()
        if (hours is None) == (timesteps is None):
            raise ConfigError("give either hours or timesteps")
        if hours is not None:
            if hours <= 0:
                raise ConfigError("hours must be positive")
            cost = interval_cost(self.pricing, start, start + timedelta(hours=hours), shape)
            return {"start": start.isoformat(timespec="seconds"), "hours": hours,
                    "cost_usd": usd_text(cost.micros), "peak_hours": str(cost.peak_hours),
                    "off_peak_hours": str(cost.off_peak_hours), **self._shape_dict(shape)}
        if timesteps is None or timesteps <= 0:
            raise ConfigError("timesteps must be positive")
        cfg = self._options({**(config or {}), "total_timesteps": timesteps})
        rate = self.throughput(cfg, shape.cpus, shape.gpus)
        if shape.spot:
            factor = float(self.pricing.spot.duration_factor())
            rate = replace(rate, sps=rate.sps / factor, low=rate.low / factor,
                           high=rate.high / factor)
        fc = forecast_new_job(self.pricing, shape, start, timesteps, rate)
        return {"start": start.isoformat(timespec="seconds"), "timesteps": timesteps,
                **fc.to_dict(), **self._shape_dict(shape)}

    def estimate_job(self, job_id: int) -> dict[str, Any]:
        job = self.queue.get(job_id)
        start = self._expected_start(job)
        out = self.estimate_shape(shape_of(job), start,
                                  timesteps=int(job.config["total_timesteps"]),
                                  config=job.config)
        return {"job_id": job_id, "state": job.state, **out}

    def _expected_start(self, job: Job) -> datetime:
        if job.state == JobState.QUEUED.value:
            eta = self.queue.show(job.id).eta_start
            if eta:
                return eta
        return utcnow()

    @staticmethod
    def _shape_dict(shape: Shape) -> dict[str, Any]:
        return {"cpus": shape.cpus, "memory_gb": shape.memory_gb, "gpus": shape.gpus,
                "priority": shape.priority_class, "spot": shape.spot}

    # --- forecasts ---------------------------------------------------------------------------

    def forecast_job(self, job_id: int) -> dict[str, Any]:
        """A running job: remaining time and final cost with a 95% interval, from its live
        progress in MLflow. A queued job: from comparable runs, starting at its ETA."""
        job = self.queue.get(job_id)
        now = utcnow()
        total = int(job.config["total_timesteps"])
        if job.state in ACTIVE_STATES:
            spent = job.cost_micros + self.budgets.attempt_cost(job, now)
            live = None
            if job.mlflow_run_id and self.tracker is not None:
                live = live_progress(self.tracker, job.mlflow_run_id)
            if live is not None:
                step, rate = live
                fc = forecast(self.pricing, shape_of(job), now, total - step, rate, spent)
                return {"job_id": job_id, "state": job.state, "global_step": step,
                        "spent_usd": usd_text(spent), **fc.to_dict()}
            fc = forecast(self.pricing, shape_of(job), now, total,
                          self.throughput(job.config, job.cpus, job.gpus), spent)
            return {"job_id": job_id, "state": job.state, "global_step": 0,
                    "spent_usd": usd_text(spent), **fc.to_dict()}
        if job.state == JobState.QUEUED.value:
            start = self._expected_start(job)
            fc = forecast_new_job(self.pricing, shape_of(job), start, total,
                                  self.throughput(job.config, job.cpus, job.gpus))
            return {"job_id": job_id, "state": job.state, "start_at": start.isoformat(
                timespec="seconds"), **fc.to_dict()}
        return {"job_id": job_id, "state": job.state, "final_cost_usd": usd_text(job.cost_micros),
                "finished_at": job.finished_at.isoformat() if job.finished_at else None}

    def forecast_queue(self, team: str | None = None) -> list[dict[str, Any]]:
        """When each waiting job (of one team, or all) should start and finish, and what it
        will cost."""
        out = []
        rates: dict[tuple[Any, ...], Throughput] = {}  # one history lookup per kind of job
        for view in self.queue.list(["queued"], limit=1000, team=team):
            job = view.job
            start = view.eta_start or utcnow()
            kind = (job.config.get("mode"), job.config.get("num_hosts"),
                    job.config.get("device"), job.cpus, job.gpus)
            if kind not in rates:
                rates[kind] = self.throughput(job.config, job.cpus, job.gpus)
            fc = forecast_new_job(self.pricing, shape_of(job), start,
                                  int(job.config["total_timesteps"]), rates[kind])
            out.append({"job_id": job.id, "name": job.name, "position": view.position,
                        "pending_reason": view.pending.reason.value if view.pending else None,
                        "start_at": start.isoformat(timespec="seconds"), **fc.to_dict()})
        return out

    # --- reports -------------------------------------------------------------------------------

    def report(self, period: str = "week", group_by: str = "team",
               now: datetime | None = None, team: str | None = None) -> dict[str, Any]:
        """Spend in the current day, week or month (of one team, or everyone), grouped, with
        averages per run and the change against the previous period. Each job's cost counts
        on the day it finished (running jobs: today, so far)."""
        if period not in PERIODS:
            raise ConfigError(f"unknown period {period!r}; choose one of {', '.join(PERIODS)}")
        if group_by not in GROUPS:
            raise ConfigError(f"unknown grouping {group_by!r}; choose one of {', '.join(GROUPS)}")
        now = now or utcnow()
        start, end = calendar_period(period, now, self.pricing.zone)
        previous = calendar_period(period, start - timedelta(seconds=1), self.pricing.zone)
        rows = [r for r in self._costed_jobs(previous[0], end, now)
                if team is None or r["team"] == team]
        current = [r for r in rows if start <= r["at"] < end]
        before = [r for r in rows if previous[0] <= r["at"] < previous[1]]
        groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in current:
            groups[r[group_by]].append(r)
        by_day: dict[date, int] = defaultdict(int)
        for r in current:
            by_day[r["at"].astimezone(self.pricing.zone).date()] += r["micros"]
        day, days = start.astimezone(self.pricing.zone).date(), []
        while day < end.astimezone(self.pricing.zone).date():
            days.append({"date": day.isoformat(), "cost_usd": usd_text(by_day.get(day, 0))})
            day += timedelta(days=1)
        total, total_before = sum(r["micros"] for r in current), sum(r["micros"] for r in before)
        runs = [r for r in current if r["micros"] > 0]
        return {
            "period": period, "team": team, "currency": self.pricing.currency,
            "start": start.isoformat(), "end": end.isoformat(),
            "group_by": group_by, "total_usd": usd_text(total), "runs": len(runs),
            "average_per_run_usd": usd_text(int(total / len(runs))) if runs else "0",
            "previous_total_usd": usd_text(total_before),
            "change_vs_previous": (round((total - total_before) / total_before, 4)
                                   if total_before else None),
            "groups": [{"key": key, "cost_usd": usd_text(sum(r["micros"] for r in items)),
                        "runs": len(items),
                        "average_per_run_usd": usd_text(int(sum(r["micros"] for r in items)
                                                       / len(items)))}
                       for key, items in sorted(groups.items(),
                                                key=lambda kv: -sum(r["micros"] for r in kv[1]))],
            "by_day": days,
        }

    def _costed_jobs(self, since: datetime, until: datetime, now: datetime) -> list[dict[str, Any]]:
        with Session(self.queue.engine) as s:
            jobs = s.exec(select(Job).where(
                (col(Job.finished_at) >= since) | col(Job.state).in_(ACTIVE_STATES))).all()
        rows = []
        for job in jobs:
            running = job.state in ACTIVE_STATES
            at = now if running else as_utc(job.finished_at)  # type: ignore[arg-type]
            micros = job.cost_micros + (self.budgets.attempt_cost(job, now) if running else 0)
            if at < until:
                rows.append({"id": job.id, "at": at, "micros": micros, "team": job.team,
                             "project": job.project, "priority": job.priority_class,
                             "status": job.state})
        return rows

    # --- recommendations -----------------------------------------------------------------------

    def most_expensive_open_job(self, team: str | None = None) -> int | None:
        """The queued or running job (of one team, or any) with the largest estimate: where
        advice saves the most."""
        stmt = (select(Job.id).where(col(Job.state).in_([JobState.QUEUED.value,
                                                          *ACTIVE_STATES]))
                .order_by(col(Job.estimated_cost_micros).desc(), col(Job.id)).limit(1))
        if team is not None:
            stmt = stmt.where(Job.team == team)
        with Session(self.queue.engine) as s:
            return s.exec(stmt).first()

    def general_advice(self) -> list[dict[str, Any]]:
        """What the price list rewards, for when there is no job to price advice for."""
        p = self.pricing
        background = p.priority_multipliers.get("background", Decimal(1))
        urgent = p.priority_multipliers.get("urgent", Decimal(1))
        return [
            {"kind": "off-peak", "advice": f"start outside {p.peak.start:%H:%M}-"
                                           f"{p.peak.end:%H:%M} on weekdays ({p.zone.key}): "
                                           f"{p.peak.off_peak_discount * 100:.0f}% off"},
            {"kind": "spot", "advice": f"run on spot capacity: {p.spot.discount * 100:.0f}% off, "
                                       f"about {(p.spot.duration_factor() - 1) * 100:.1f}% longer "
                                       f"from interruptions"},
            {"kind": "priority", "advice": f"background priority costs {background:.2f}x, urgent "
                                           f"{urgent:.2f}x the normal rate"},
            {"kind": "early-stop", "advice": "set target_kl and early stopping so runs end when "
                                             "the evaluation stops improving"},
        ]

    def recommend(self, job_id: int) -> list[dict[str, Any]]:
        """Ways to spend less on a job, each with the saving computed for it."""
        job = self.queue.get(job_id)
        shape = shape_of(job)
        duration = self._duration(job)
        start = self._expected_start(job) if job.state == JobState.QUEUED.value else \
            (as_utc(job.started_at) if job.started_at else utcnow())
        base = interval_cost(self.pricing, start, start + duration, shape).micros
        advice: list[dict[str, Any]] = []

        def add(kind: str, text: str, cost: int, **extra: Any) -> None:
            if cost < base:
                advice.append({"kind": kind, "advice": text, "saving_usd": usd_text(base - cost),
                               "saving_fraction": round((base - cost) / base, 4) if base else 0,
                               **extra})

        off = next_off_peak(self.pricing, start)
        if off > start:
            add("off-peak", f"start at {off.isoformat(timespec='minutes')} (off-peak)",
                interval_cost(self.pricing, off, off + duration, shape).micros,
                start_at=off.isoformat(timespec="minutes"))
        if not shape.spot:
            longer = duration * float(self.pricing.spot.duration_factor())
            add("spot", "run on spot capacity (interruptions lengthen it "
                f"{(float(self.pricing.spot.duration_factor()) - 1) * 100:.1f}%; the trainer "
                "resumes from checkpoints)",
                interval_cost(self.pricing, start, start + longer, replace(shape, spot=True)).micros)
        if shape.priority_class != "background":
            add("priority", "submit at background priority (waits behind other work)",
                interval_cost(self.pricing, start, start + duration,
                              replace(shape, priority_class="background")).micros)
        advice += self._run_advice(job, shape, start, duration, base)
        return sorted(advice, key=lambda a: -float(a["saving_usd"]))

    def _duration(self, job: Job) -> timedelta:
        if job.started_at is not None and job.finished_at is not None:
            return as_utc(job.finished_at) - as_utc(job.started_at)
        if job.state in ACTIVE_STATES:
            elapsed = utcnow() - as_utc(job.started_at) if job.started_at else timedelta(0)
            return elapsed + timedelta(seconds=remaining_seconds(job, utcnow()))
        return timedelta(seconds=job.estimated_duration_s or 0)

    def _run_advice(self, job: Job, shape: Shape, start: datetime, duration: timedelta,
                    base: int) -> list[dict[str, Any]]:
        """Advice that needs the job's MLflow run: early stopping, right-sizing, batch size."""
        if self.tracker is None or job.mlflow_run_id is None:
            return []
        client = self.tracker.client()
        out: list[dict[str, Any]] = []
        curve = [(m.step, m.value) for m in sorted(
            client.get_metric_history(job.mlflow_run_id, REWARD_METRIC), key=lambda m: m.step)]
        total = int(job.config["total_timesteps"])
        plateau = plateau_step(curve)
        if plateau is not None and plateau < total:
            frac = plateau / total
            cost = interval_cost(self.pricing, start, start + duration * frac, shape).micros
            out.append({"kind": "early-stopping",
                        "advice": f"the reward curve flattens at step {plateau:,}; stop there "
                                  f"(set total_timesteps={plateau:,} or early stopping)",
                        "plateau_step": plateau, "saving_usd": usd_text(base - cost),
                        "saving_fraction": round(1 - frac, 4)})
        cpu = [m.value for m in client.get_metric_history(
            job.mlflow_run_id, "system/cpu_utilization_percentage")]
        if cpu and shape.cpus > 1:
            used = statistics.mean(cpu) / 100 * (_machine_cores() or shape.cpus)
            needed = max(1.0, round(used + 0.5))
            if needed < shape.cpus:
                smaller = replace(shape, cpus=needed)
                cost = interval_cost(self.pricing, start, start + duration, smaller).micros
                out.append({"kind": "right-size",
                            "advice": f"it used about {used:.1f} of {shape.cpus:g} CPUs "
                                      f"(MLflow system metrics); request {needed:g}",
                            "saving_usd": usd_text(base - cost),
                            "saving_fraction": round((base - cost) / base, 4) if base else 0})
        batch = int(job.config.get("num_envs", 8)) * int(job.config.get("rollout_steps", 128))
        if batch < 2048 and self.tracker is not None:
            bigger = dict(job.config, num_envs=max(16, int(job.config.get("num_envs", 8))))
            mine, theirs = self.throughput(job.config), self.throughput(bigger)
            if theirs.sps > mine.sps * 1.05 and theirs.samples and mine.samples:
                cost = interval_cost(self.pricing, start,
                                     start + duration * (mine.sps / theirs.sps), shape).micros
                out.append({"kind": "batch-size",
                            "advice": f"num_envs={bigger['num_envs']} ran at "
                                      f"{theirs.sps:,.0f} steps/s in comparable runs vs "
                                      f"{mine.sps:,.0f}",
                            "saving_usd": usd_text(base - cost),
                            "saving_fraction": round((base - cost) / base, 4) if base else 0})
        return out

    # --- comparison ----------------------------------------------------------------------------

    def compare(self, configs: list[dict[str, Any]], shape: Shape,
                start: datetime | None = None) -> list[dict[str, Any]]:
        """Estimated cost, duration and expected quality of each config, side by side."""
        if not configs:
            raise ConfigError("nothing to compare")
        start = start or utcnow()
        rows = []
        # Configs of one kind share their history: each kind is looked up in MLflow once.
        rates: dict[tuple[Any, ...], Throughput] = {}
        qualities: dict[tuple[Any, ...], dict[str, Any]] = {}
        for index, raw in enumerate(configs):
            try:
                cfg = self._options(raw)
            except ConfigError as exc:
                raise ConfigError(f"config {index}: {exc}") from None
            kind = (cfg["mode"], cfg["num_hosts"], cfg.get("device"))
            if kind not in rates:
                rates[kind] = self.throughput(cfg, shape.cpus, shape.gpus)
            quality_kind = (cfg["mode"], cfg["num_hosts"], cfg["total_timesteps"])
            if quality_kind not in qualities:
                qualities[quality_kind] = self._expected_quality(cfg)
            fc = forecast_new_job(self.pricing, shape, start, cfg["total_timesteps"],
                                  rates[kind])
            rows.append({"index": index, "config": raw, **fc.to_dict(),
                         "expected_quality": qualities[quality_kind]})
        return rows

    def _expected_quality(self, cfg: dict[str, Any]) -> dict[str, Any]:
        """Median PPO/best-heuristic wait ratio of comparable finished runs (< 1 beats it)."""
        if self.tracker is None:
            return {"wait_ratio_vs_best_heuristic": None, "runs": 0}
        try:
            client = self.tracker.client()
            runs = client.search_runs([self.tracker.experiment_id()],
                                      filter_string=f"params.mode = '{cfg['mode']}' and "
                                                    "attributes.status = 'FINISHED'",
                                      max_results=200)
        except Exception:  # noqa: BLE001 - quality is an extra; no store means no history
            return {"wait_ratio_vs_best_heuristic": None, "runs": 0}
        values = [r.data.metrics[QUALITY_METRIC] for r in runs
                  if QUALITY_METRIC in r.data.metrics
                  and r.data.params.get("num_hosts") == str(cfg["num_hosts"])
                  and abs(int(r.data.params.get("total_timesteps", 0)) - cfg["total_timesteps"])
                  <= cfg["total_timesteps"]]
        return {"wait_ratio_vs_best_heuristic": round(statistics.median(values), 4)
                if values else None, "runs": len(values)}


def plateau_step(curve: list[tuple[int, float]], tolerance: float = 0.02,
                 min_points: int = 6) -> int | None:
    """The first step after which the curve never improves by more than ``tolerance`` of its
    overall range: where more training stopped paying. None for a curve still rising."""
    if len(curve) < min_points:
        return None
    values = [v for _, v in curve]
    span = max(values) - min(values)
    if span <= 0:
        return curve[0][0]
    best_after = values[-1]
    candidate = None
    for i in range(len(values) - 1, -1, -1):
        best_after = max(best_after, values[i])
        if best_after - values[i] > tolerance * span:
            break
        candidate = i
    if candidate is None or candidate >= len(values) - 2:
        return None  # still improving at the end
    return curve[candidate][0]


def _machine_cores() -> int | None:
    """MLflow's CPU figure is a percentage of the whole machine; local jobs ran on this one."""
    import os

    return os.cpu_count()


def report_chart(report: dict[str, Any], path: Path) -> Path:
    """A PNG bar chart of the period's spend per day."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    days = [d["date"][5:] for d in report["by_day"]]
    values = [float(d["cost_usd"]) for d in report["by_day"]]
    fig, ax = plt.subplots(figsize=(max(4, len(days) * 0.45), 3))
    ax.bar(days, values, color="#4a7fb0")
    ax.set_ylabel(f"spend ({report.get('currency', 'USD')})")
    ax.set_title(f"Spend per day, {report['period']} from {report['start'][:10]} "
                 f"(total {usd(report['total_usd'])})")
    ax.tick_params(axis="x", labelrotation=60, labelsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
