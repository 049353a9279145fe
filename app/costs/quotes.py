"""What a job or a resource shape would cost: an exact estimate over the hours it would run, priced
at its expected start.

A part of CostService (app/costs/service.py), which composes the parts over one set of
dependencies."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from app.core.errors import ConfigError
from app.core.models import Job
from app.core.money import usd_text
from app.core.queue import QueueService
from app.core.states import JobState
from app.core.timeutil import utcnow
from app.core.tracking import Tracker
from app.costs.budgets import BudgetService, shape_of
from app.costs.calculator import Shape, interval_cost
from app.costs.forecast import forecast_new_job
from app.costs.pricing import Pricing


class Quotes:
    """Exact estimates of a job or a resource shape.
    It reads the attributes below, which CostService holds."""

    pricing: Pricing
    queue: QueueService
    budgets: BudgetService
    tracker: Tracker | None

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
