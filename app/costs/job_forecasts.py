"""What running and queued jobs will cost by the time they finish, with a 95% interval from
the throughput of comparable runs.

A part of CostService (app/costs/service.py), which composes the parts over one set of
dependencies."""

from __future__ import annotations

from typing import Any

from app.core.money import usd_text
from app.core.planning import ACTIVE_STATES
from app.core.queue import QueueService
from app.core.states import JobState
from app.core.timeutil import utcnow
from app.core.tracking import Tracker
from app.costs.budgets import BudgetService, shape_of
from app.costs.forecast import Throughput, forecast, forecast_new_job
from app.costs.history import live_progress
from app.costs.pricing import Pricing


class Forecasts:
    """Final costs of running and queued jobs, with intervals.
    It reads the attributes below, which CostService holds."""

    pricing: Pricing
    queue: QueueService
    budgets: BudgetService
    tracker: Tracker | None

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
