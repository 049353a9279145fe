"""Ways to spend less: off-peak starts, spot capacity, priority, early stopping and
right-sizing, each with its saving; and training configs compared side by side.

A part of CostService (app/costs/service.py), which composes the parts over one set of
dependencies."""

from __future__ import annotations

import statistics
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlmodel import Session, col, select

from app.core.errors import ConfigError
from app.core.models import Job
from app.core.money import usd_text
from app.core.planning import ACTIVE_STATES, remaining_seconds
from app.core.queue import QueueService
from app.core.states import JobState
from app.core.timeutil import as_utc, utcnow
from app.core.tracking import Tracker
from app.costs.budgets import BudgetService, shape_of
from app.costs.calculator import Shape, interval_cost
from app.costs.constants import QUALITY_METRIC, REWARD_METRIC
from app.costs.forecast import Throughput, forecast_new_job
from app.costs.pricing import Pricing
from app.costs.windows import next_off_peak


class Savings:
    """Ways to spend less, each with its saving; configs compared.
    It reads the attributes below, which CostService holds."""

    pricing: Pricing
    queue: QueueService
    budgets: BudgetService
    tracker: Tracker | None

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
                f"{(float(self.pricing.spot.duration_factor()) - 1) * 100:.1f}%: each is "
                "retried at once, without using up an attempt, and resumes from the job's "
                "latest checkpoint)",
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
