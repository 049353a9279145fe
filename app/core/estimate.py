"""Duration and cost estimated at submission.

A first estimate: duration from the job's total_timesteps at a stated prior throughput, cost
from the price list's hourly rates for the job's resources and priority class. The costs
service refines both from comparable past runs and pricing windows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from app.core.timeutil import utcnow
from app.costs.calculator import Shape, interval_cost
from app.costs.pricing import Pricing

# Steps per second assumed for a job with no history: `oppen bench train` measured 13.4k on
# a 2-core machine with the default network; jobs share machines, so assume less.
PRIOR_STEPS_PER_SECOND = 8_000.0
# Start-up (imports, MLflow run, simulator set-up) and the final evaluation.
FIXED_OVERHEAD_S = 30.0


@dataclass(frozen=True)
class Estimate:
    duration_s: float
    cost_micros: int


def estimate_job(total_timesteps: int, cpus: float, memory_mb: int, gpus: int,
                 priority_class: str, pricing: Pricing,
                 steps_per_second: float = PRIOR_STEPS_PER_SECOND, spot: bool = False,
                 start: datetime | None = None) -> Estimate:
    """Duration at the given throughput (longer on spot, by the expected interruptions), and
    its exact price if it starts at ``start`` (default now)."""
    duration = FIXED_OVERHEAD_S + total_timesteps / max(1.0, steps_per_second)
    if spot:
        duration *= float(pricing.spot.duration_factor())
    begin = start or utcnow()
    shape = Shape(cpus, memory_mb / 1024, gpus, priority_class, spot)
    cost = interval_cost(pricing, begin, begin + timedelta(seconds=duration), shape)
    return Estimate(duration, cost.micros)
