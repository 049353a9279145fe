"""Budget advice for submissions: the queue's budget gate (hard budgets refuse, soft ones
warn, locked inside the storing transaction), whether a planned job fits, and what would fit
instead when it does not (background priority, spot, an off-peak start, fewer steps), each
priced at its dearest start in the minutes a person takes to act on it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from app.core.money import usd_micros, usd_text
from app.core.ports import Decision, Estimator
from app.core.submission import JobSpec
from app.core.timeutil import utcnow
from app.costs.budgets import BudgetService
from app.costs.calculator import peak_spans
from app.costs.pricing import Pricing
from app.costs.windows import next_off_peak

# How long the variants suggested with a budget refusal keep fitting, prices permitting: a
# person reads the refusal, then submits one of them.
SUGGESTION_HOLDS = timedelta(minutes=10)
# A cap checked before storing holds for this long: the jobs are priced again as they are
# stored, a moment later, and a peak boundary may pass in between.
CAP_HOLDS = timedelta(minutes=1)


def with_timesteps(spec: JobSpec, steps: int) -> JobSpec:
    return replace(spec, config={**spec.config, "total_timesteps": steps})


@dataclass
class BudgetAdvisor:
    engine: Engine
    estimator: Estimator
    budgets: BudgetService
    pricing: Pricing

    def lock_and_check(self, s: Session, rows: Sequence[dict[str, Any]],
                       now: datetime) -> Decision:
        """The queue's budget gate: what the rows add to each budget that applies (their
        team's, project's, sweep's, the global ones), locked inside the storing transaction."""
        return self.budgets.lock_and_check_rows(s, rows, now)

    def refusal(self, specs: Sequence[JobSpec], refusals: list[str]) -> str:
        what = "job" if len(specs) == 1 else f"batch of {len(specs)} jobs"
        message = f"{what} refused, nothing queued: " + "; ".join(refusals)
        if len(specs) == 1:
            fits = self.suggest(specs[0])
            if fits:
                message += ". What would fit: " + "; ".join(fits)
        return message

    def check(self, spec: JobSpec, max_cost_micros: int | None = None) -> dict[str, Any]:
        """Would this job be accepted now, and within an optional cap of its own? Its estimate
        against every budget that applies, and what would fit if not. Changes nothing."""
        now = utcnow()
        estimate = self.estimator.estimate(spec, now)
        rows, refusals = [], []
        with Session(self.engine) as s:
            applicable = self.budgets.applicable(s, spec.team, spec.project)
            for b in applicable:
                _, committed = self.budgets.measure(s, b, now)
                room = b.limit_micros - committed
                fits = estimate.cost_micros <= room
                rows.append({"name": b.name, "hard": b.hard, "limit_usd": usd_text(b.limit_micros),
                             "committed_usd": usd_text(committed),
                             "remaining_usd": usd_text(room), "fits": fits})
                if not fits and b.hard:
                    refusals.append(f"budget {b.name} has {usd_micros(max(room, 0))} left")
        if max_cost_micros is not None and estimate.cost_micros > max_cost_micros:
            refusals.append(f"over the cap of {usd_micros(max_cost_micros)}")
        suggestions: list[str] = []
        if refusals:
            suggestions = self.suggest(spec)
            if max_cost_micros is not None:
                steps = self.fitting_timesteps(spec, max_cost_micros, now)
                if steps:
                    suggestions.append(f"total_timesteps={steps:,} fits the cap")
        return {"fits": not refusals, "estimated_cost_usd": usd_text(estimate.cost_micros),
                "estimated_duration_s": round(estimate.duration_s, 1),
                "cap_usd": usd_text(max_cost_micros) if max_cost_micros is not None else None,
                "budgets": rows, "refusals": refusals, "suggestions": suggestions}

    def suggest(self, spec: JobSpec) -> list[str]:
        """Variants of a refused job that fit the room left under its hard budgets, priced at
        their dearest start within SUGGESTION_HOLDS: a person submits one a little later, and
        a job that straddles a peak boundary costs more the nearer its start comes to peak."""
        now = utcnow()
        with Session(self.engine) as s:
            room = self.budgets.headroom(s, spec.team, spec.project, now)
        if room is None or room <= 0:
            return []
        out: list[str] = []
        variants = [
            ("background priority", replace(spec, priority_class="background")),
            ("spot capacity", replace(spec, spot=True)),
            ("background on spot", replace(spec, priority_class="background", spot=True)),
        ]
        off_peak = next_off_peak(self.pricing, now)
        if off_peak > now:
            variants.append((f"starting off-peak at {off_peak.isoformat(timespec='minutes')}",
                             replace(spec, not_before=off_peak)))
        for label, variant in variants:
            cost = self.dearest_start_cost(variant, now)
            if cost <= room:
                out.append(f"{label} ({usd_micros(cost)})")
        steps = self.fitting_timesteps(spec, room, now)
        if steps:
            cost = self.dearest_start_cost(with_timesteps(spec, steps), now)
            out.append(f"total_timesteps={steps:,} ({usd_micros(cost)})")
        return out

    def dearest_start_cost(self, spec: JobSpec, now: datetime,
                           within: timedelta = SUGGESTION_HOLDS) -> int:
        """The highest estimate for the job submitted at any moment in [now, now + within].
        The price is piecewise linear in the start time, so its maximum lies at an end of
        that range or where the job's start or end crosses a peak boundary."""
        duration = timedelta(seconds=self.estimator.estimate(spec, now).duration_s)
        last = now + within
        boundaries = {edge for span in peak_spans(self.pricing, now - timedelta(hours=1),
                                                   last + duration + timedelta(hours=1))
                      for edge in span}
        starts = {now, last} | {t for b in boundaries for t in (b, b - duration)
                                if now < t < last}
        return max(self.estimator.estimate(spec, t).cost_micros for t in starts)

    def fitting_timesteps(self, spec: JobSpec, room: int, now: datetime) -> int | None:
        lo, hi = 0, int(spec.config["total_timesteps"])
        while lo < hi:  # the most timesteps whose estimate fits
            mid = (lo + hi + 1) // 2
            if self.dearest_start_cost(with_timesteps(spec, mid), now) <= room:
                lo = mid
            else:
                hi = mid - 1
        return lo or None
