"""Duration and cost estimated at submission.

Duration from the job's total_timesteps at the throughput of comparable finished jobs (or a
stated prior), cost from the price list's hourly rates for the job's resources and priority
class over exactly the hours it would run. :class:`JobEstimator` is what the queue receives as
its ``Estimator`` (app.core.ports).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from app.core.ports import Estimate
from app.core.submission import JobSpec
from app.core.timeutil import utcnow
from app.costs.calculator import Shape, interval_cost
from app.costs.pricing import Pricing

# Steps per second assumed for a job with no history: `oppen bench train` measured 13.4k on
# a 2-core machine with the default network; jobs share machines, so assume less.
PRIOR_STEPS_PER_SECOND = 8_000.0
# Start-up (imports, MLflow run, simulator set-up) and the final evaluation.
FIXED_OVERHEAD_S = 30.0
# How long a looked-up throughput is reused: a server taking hundreds of submissions a second
# asks once, and estimates lag new history by seconds only.
THROUGHPUT_TTL_S = 2.0


def run_kind(config: dict[str, Any], cpus: float | None = None,
             gpus: int | None = None) -> tuple[Any, ...]:
    """What makes two runs comparable for throughput: mode, host count, device, and the CPUs
    and GPUs they ran on. The one key for every throughput lookup and cache."""
    return (config.get("mode"), config.get("num_hosts"), config.get("device"), cpus, gpus)


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


@dataclass
class ThroughputCache:
    """Steps per second by run kind, each looked up at most every ``ttl_s``."""

    lookup: Callable[[dict[str, Any], float, int], float]
    ttl_s: float = THROUGHPUT_TTL_S
    clock: Callable[[], float] = time.monotonic
    _seen: dict[tuple[Any, ...], tuple[float, float]] = field(default_factory=dict, repr=False)

    def __call__(self, config: dict[str, Any], cpus: float, gpus: int) -> float:
        key = run_kind(config, cpus, gpus)
        cached = self._seen.get(key)
        if cached is not None and self.clock() - cached[0] < self.ttl_s:
            return cached[1]
        sps = self.lookup(config, cpus, gpus)
        self._seen[key] = (self.clock(), sps)
        return sps


def own_history_throughput(engine: Engine) -> Callable[[dict[str, Any], float, int], float]:
    """Throughput from Oppen's own finished jobs of the same kind, else the prior."""
    from app.costs.history import job_history_throughput

    def lookup(config: dict[str, Any], cpus: float, gpus: int) -> float:
        with Session(engine) as s:
            found = job_history_throughput(s, config, cpus, gpus)
        return found.sps if found is not None else PRIOR_STEPS_PER_SECOND

    return lookup


@dataclass
class JobEstimator:
    """The queue's Estimator: a spec's duration and price at a start time."""

    pricing: Pricing
    throughput: Callable[[dict[str, Any], float, int], float] | None = None

    def estimate(self, spec: JobSpec, now: datetime | None = None) -> Estimate:
        start = max(now or utcnow(), spec.not_before) if spec.not_before else now
        sps = self.throughput(spec.config, spec.cpus, spec.gpus) if self.throughput \
            else PRIOR_STEPS_PER_SECOND
        return estimate_job(int(spec.config.get("total_timesteps", 0)), spec.cpus,
                            spec.memory_mb, spec.gpus, spec.priority_class, self.pricing,
                            steps_per_second=sps, spot=spec.spot, start=start)
