"""Forecasts: how long a job will take and what it will cost, with a 95% interval.

Before a job runs, its throughput comes from comparable past runs in MLflow (same mode, a
similar number of hosts, the same CPU/GPU shape): the median steps per second, with the
2.5th and 97.5th percentiles as the interval. With no history, a stated prior is used with a
wide interval (x0.5 to x2).

While it runs, the forecast follows its live progress: the global step and steps per second
it reports to MLflow. The remaining time is remaining steps / current rate; the interval
comes from how much the rate has varied over the recent reports (the 2.5th-97.5th percentile
of the last rates seen), so a run whose rate changes mid-way adapts within a few reports.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from app.core.money import usd_text
from app.costs.calculator import Shape, interval_cost
from app.costs.estimate import FIXED_OVERHEAD_S, PRIOR_STEPS_PER_SECOND
from app.costs.pricing import Pricing

PRIOR_LOW, PRIOR_HIGH = 0.5, 2.0
RECENT_RATES = 20


@dataclass(frozen=True)
class Throughput:
    """Steps per second: a central value and a 95% interval, and where they came from."""

    sps: float
    low: float
    high: float
    source: str
    samples: int = 0


@dataclass(frozen=True)
class Forecast:
    remaining_s: float
    remaining_low_s: float
    remaining_high_s: float
    cost_micros: int
    cost_low_micros: int
    cost_high_micros: int
    finish_at: datetime
    throughput: Throughput

    def to_dict(self) -> dict[str, Any]:
        return {
            "remaining_s": round(self.remaining_s, 1),
            "remaining_interval_s": [round(self.remaining_low_s, 1),
                                     round(self.remaining_high_s, 1)],
            "final_cost_usd": usd_text(self.cost_micros),
            "final_cost_interval_usd": [usd_text(self.cost_low_micros),
                                        usd_text(self.cost_high_micros)],
            "finish_at": self.finish_at.isoformat(timespec="seconds"),
            "steps_per_second": round(self.throughput.sps, 1),
            "steps_per_second_interval": [round(self.throughput.low, 1),
                                          round(self.throughput.high, 1)],
            "throughput_source": self.throughput.source,
        }


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    if len(sorted_values) == 1:
        return sorted_values[0]
    pos = q * (len(sorted_values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def throughput_from(rates: Sequence[float], source: str) -> Throughput | None:
    rates = sorted(r for r in rates if r > 0)
    if not rates:
        return None
    return Throughput(statistics.median(rates), _percentile(rates, 0.025),
                      _percentile(rates, 0.975), source, len(rates))


def prior_throughput() -> Throughput:
    return Throughput(PRIOR_STEPS_PER_SECOND, PRIOR_STEPS_PER_SECOND * PRIOR_LOW,
                      PRIOR_STEPS_PER_SECOND * PRIOR_HIGH,
                      f"prior ({PRIOR_STEPS_PER_SECOND:,.0f} steps/s, no comparable runs)")


def forecast(pricing: Pricing, shape: Shape, now: datetime, remaining_steps: int,
             rate: Throughput, spent_micros: int = 0, overhead_s: float = 0.0) -> Forecast:
    """Remaining time and final cost (spent so far + the rest priced over when it runs)."""
    def seconds(sps: float) -> float:
        return overhead_s + max(0, remaining_steps) / max(sps, 1e-9)

    mid, low, high = seconds(rate.sps), seconds(rate.high), seconds(rate.low)

    def cost(duration: float) -> int:
        return spent_micros + interval_cost(pricing, now, now + timedelta(seconds=duration),
                                            shape).micros

    return Forecast(mid, low, high, cost(mid), cost(low), cost(high),
                    now + timedelta(seconds=mid), rate)


def forecast_new_job(pricing: Pricing, shape: Shape, start: datetime, total_timesteps: int,
                     rate: Throughput) -> Forecast:
    return forecast(pricing, shape, start, total_timesteps, rate, overhead_s=FIXED_OVERHEAD_S)
