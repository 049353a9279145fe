"""Budgets: limits on spending per scope and period, enforced at submission and admission.

What a budget counts, for the jobs in its scope submitted within its period:

    spent     = what finished attempts cost + what running attempts have cost so far
    committed = spent + the rest of each running job's forecast + the estimate of each
                queued job

A hard budget refuses a submission that would take ``committed`` past its limit, saying how
far over and what would fit; a soft one accepts it with a warning. The dispatcher checks hard
budgets again before it starts a job. Each decision first bumps a version on the budget rows
involved, a row lock that serialises concurrent submitters, so they cannot together commit
more than the limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import func, or_, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from app.core.admission import Candidate
from app.core.errors import ConfigError, NotFoundError
from app.core.models import Budget, Job
from app.core.money import to_micros, usd_micros, usd_text
from app.core.ports import Decision
from app.core.states import JobState
from app.core.timeutil import as_utc, utcnow
from app.costs.calculator import Shape, interval_cost
from app.costs.periods import calendar_period
from app.costs.pricing import Pricing

# A sweep's scope is its trials (scope_value: the sweep's id): its hard cost cap.
SCOPES = ("global", "team", "project", "sweep")
PERIODS = ("weekly", "monthly", "custom")
# In flight: spent so far plus the rest of the forecast. A waiting job (suspended by Kueue)
# has spent nothing on its attempt yet; its started_at is unset until it runs.
RUNNING = (JobState.DISPATCHING.value, JobState.WAITING.value, JobState.RUNNING.value)


def shape_of(job: Job | Candidate) -> Shape:
    return Shape(job.cpus, job.memory_mb / 1024, job.gpus, job.priority_class,
                 bool(getattr(job, "spot", False)))


def period_window(budget: Budget, now: datetime, pricing: Pricing) -> tuple[datetime, datetime]:
    """The budget's current period in UTC; weeks start Monday 00:00 and months on the 1st,
    both in the pricing time zone."""
    if budget.period == "custom":
        return as_utc(budget.starts_at), as_utc(budget.ends_at)  # type: ignore[arg-type]
    return calendar_period(budget.period, now, pricing.zone)


@dataclass
class BudgetStatus:
    budget: Budget
    window: tuple[datetime, datetime]
    spent_micros: int
    committed_micros: int
    burn_per_day_micros: int
    runs_out_at: datetime | None

    @property
    def used_fraction(self) -> float:
        limit = self.budget.limit_micros
        if limit == 0:
            return 0.0 if self.committed_micros <= 0 else float("inf")
        return self.committed_micros / limit

    @property
    def crossed(self) -> list[float]:
        return [t for t in self.budget.thresholds if self.used_fraction >= t]

    def to_dict(self) -> dict[str, Any]:
        b = self.budget
        return {
            "name": b.name, "scope": b.scope, "scope_value": b.scope_value, "period": b.period,
            "hard": b.hard, "limit_usd": usd_text(b.limit_micros),
            "window_start": self.window[0].isoformat(), "window_end": self.window[1].isoformat(),
            "spent_usd": usd_text(self.spent_micros),
            "committed_usd": usd_text(self.committed_micros),
            "remaining_usd": usd_text(b.limit_micros - self.committed_micros),
            # JSON has no infinity: null means anything committed against a $0 limit.
            "used_fraction": round(self.used_fraction, 4)
            if self.used_fraction != float("inf") else None,
            "thresholds": b.thresholds, "crossed": self.crossed,
            "burn_per_day_usd": usd_text(self.burn_per_day_micros),
            "runs_out_at": self.runs_out_at.isoformat() if self.runs_out_at else None,
        }


def used_percent(used_fraction: float | None) -> str:
    """A budget's share used, for people; None (over a $0 limit) reads as infinite."""
    return "∞%" if used_fraction is None else f"{used_fraction * 100:.0f}%"


class BudgetService:
    def __init__(self, engine: Engine, pricing: Pricing) -> None:
        self.engine = engine
        self.pricing = pricing

    # --- managing --------------------------------------------------------------------------

    def set(self, name: str, limit_usd: str | Decimal | float, scope: str = "global",
            scope_value: str | None = None, period: str = "monthly",
            starts_at: datetime | None = None, ends_at: datetime | None = None,
            hard: bool = True, thresholds: Sequence[float] | None = None) -> Budget:
        """Creates the budget, or replaces the terms of the one with this name."""
        if not name or not name.strip():
            raise ConfigError("a budget needs a name")
        try:
            limit = Decimal(str(limit_usd))
        except InvalidOperation:
            raise ConfigError(f"budget limit {limit_usd!r} is not an amount of money") from None
        if not limit.is_finite() or limit < 0:
            raise ConfigError(f"budget limit must be at least $0, got {limit_usd}")
        if scope not in SCOPES:
            raise ConfigError(f"unknown budget scope {scope!r}; choose one of {', '.join(SCOPES)}")
        if scope == "global":
            scope_value = "*"
        elif not scope_value:
            raise ConfigError(f"a {scope} budget needs the {scope}'s name")
        if scope == "sweep" and not str(scope_value).isdigit():
            raise ConfigError(f"a sweep budget names the sweep by its id, got {scope_value!r}")
        if period not in PERIODS:
            raise ConfigError(f"unknown budget period {period!r}; choose one of "
                              f"{', '.join(PERIODS)}")
        if period == "custom":
            if starts_at is None or ends_at is None:
                raise ConfigError("a custom period needs a start and an end")
            if starts_at.tzinfo is None or ends_at.tzinfo is None:
                raise ConfigError("the period's start and end must carry a time zone")
            if ends_at <= starts_at:
                raise ConfigError(f"the period ends ({ends_at.isoformat()}) before it starts "
                                  f"({starts_at.isoformat()})")
        elif starts_at is not None or ends_at is not None:
            raise ConfigError(f"a {period} budget takes no start or end; use --period custom")
        levels = sorted(thresholds) if thresholds else [0.5, 0.8, 1.0]
        if any(not 0 < t <= 10 for t in levels):
            raise ConfigError("alert thresholds are fractions of the limit, above 0 (0.8 = 80%)")
        with Session(self.engine) as s:
            budget = s.exec(select(Budget).where(Budget.name == name.strip())).first() \
                or Budget(name=name.strip(), limit_micros=0)
            budget.scope, budget.scope_value, budget.period = scope, scope_value, period
            budget.starts_at, budget.ends_at = starts_at, ends_at
            budget.limit_micros, budget.hard = to_micros(limit), hard
            budget.thresholds = levels
            s.add(budget)
            s.commit()
            s.refresh(budget)
            return budget

    def delete(self, name: str) -> None:
        with Session(self.engine) as s:
            budget = s.exec(select(Budget).where(Budget.name == name)).first()
            if budget is None:
                raise NotFoundError(f"no budget named {name!r}")
            s.delete(budget)
            s.commit()

    def list(self) -> list[Budget]:
        with Session(self.engine) as s:
            return list(s.exec(select(Budget).order_by(col(Budget.name))).all())

    def get(self, name: str) -> Budget:
        with Session(self.engine) as s:
            budget = s.exec(select(Budget).where(Budget.name == name)).first()
            if budget is None:
                raise NotFoundError(f"no budget named {name!r}")
            return budget

    # --- measuring -------------------------------------------------------------------------

    @staticmethod
    def applicable(s: Session, team: str, project: str,
                   sweep_id: int | None = None) -> list[Budget]:
        scopes = [Budget.scope == "global",
                  (Budget.scope == "team") & (Budget.scope_value == team),
                  (Budget.scope == "project") & (Budget.scope_value == project)]
        if sweep_id is not None:
            scopes.append((Budget.scope == "sweep") & (Budget.scope_value == str(sweep_id)))
        return list(s.exec(select(Budget).where(or_(*scopes))).all())

    def _in_scope(self, budget: Budget, window: tuple[datetime, datetime]) -> Any:
        cond = (col(Job.created_at) >= window[0]) & (col(Job.created_at) < window[1])
        if budget.scope == "team":
            cond &= Job.team == budget.scope_value
        elif budget.scope == "project":
            cond &= Job.project == budget.scope_value
        elif budget.scope == "sweep":
            cond &= Job.sweep_id == int(budget.scope_value)
        return cond

    def attempt_cost(self, job: Job, now: datetime) -> int:
        """What the running attempt has cost so far."""
        if job.started_at is None:
            return 0
        return self.cost_between(job, as_utc(job.started_at), now)

    def cost_between(self, job: Job, start: datetime, end: datetime) -> int:
        """What the job's resources cost from ``start`` to ``end`` (an attempt's own times)."""
        if end <= start:
            return 0
        return interval_cost(self.pricing, as_utc(start), as_utc(end), shape_of(job)).micros

    def measure(self, s: Session, budget: Budget, now: datetime,
                include_queued: bool = True) -> tuple[int, int]:
        """(spent, committed) in micro-dollars for the budget's current period."""
        window = period_window(budget, now, self.pricing)
        scope = self._in_scope(budget, window)
        finished = s.exec(select(func.coalesce(func.sum(Job.cost_micros), 0))
                          .where(scope).where(col(Job.state).not_in(RUNNING))).one()
        spent, committed = int(finished), int(finished)
        for job in s.exec(select(Job).where(scope).where(col(Job.state).in_(RUNNING))).all():
            so_far = job.cost_micros + self.attempt_cost(job, now)
            spent += so_far
            committed += max(so_far, job.estimated_cost_micros or 0)
        if include_queued:
            queued = s.exec(select(func.coalesce(func.sum(Job.estimated_cost_micros), 0))
                            .where(scope).where(Job.state == JobState.QUEUED.value)).one()
            committed += int(queued)
        return spent, committed

    def status(self, budget: Budget, now: datetime | None = None) -> BudgetStatus:
        now = now or utcnow()
        with Session(self.engine) as s:
            spent, committed = self.measure(s, budget, now)
        window = period_window(budget, now, self.pricing)
        elapsed_days = max((min(now, window[1]) - window[0]).total_seconds() / 86400, 1 / 24)
        burn = int(spent / elapsed_days)
        runs_out = None
        if burn > 0:
            left = budget.limit_micros - spent
            runs_out = now + timedelta(days=max(0.0, left / burn))
            if runs_out >= window[1]:
                runs_out = None  # lasts the period at this rate
        return BudgetStatus(budget, window, spent, committed, burn, runs_out)

    # --- deciding --------------------------------------------------------------------------

    def overrun(self, s: Session, job: Job, now: datetime, horizon_s: float) -> str | None:
        """The dispatcher's SpendGuard: a running job is stopped while each hard budget over
        it still has room for ``horizon_s`` more of every running job's spend in its scope
        (the next tick and the stop's grace), so the budget is not passed in between."""
        ahead_until = now + timedelta(seconds=horizon_s)
        for budget in self.applicable(s, job.team, job.project, job.sweep_id):
            if not budget.hard:
                continue
            spent, _ = self.measure(s, budget, now, include_queued=False)
            window = period_window(budget, now, self.pricing)
            running = s.exec(select(Job).where(self._in_scope(budget, window))
                             .where(col(Job.state).in_(RUNNING))).all()
            ahead = sum(interval_cost(self.pricing, now, ahead_until, shape_of(j)).micros
                        for j in running)
            if spent + ahead > budget.limit_micros:
                return (f"budget '{budget.name}' has {usd_micros(spent)} of "
                        f"{usd_micros(budget.limit_micros)} spent, and its running jobs would "
                        f"spend {usd_micros(ahead)} more within {horizon_s:g} s")
        return None

    def lock_and_check(self, s: Session, team: str, project: str, extra_micros: int,
                       now: datetime, sweep_id: int | None = None) -> Decision:
        """Inside the caller's transaction: locks the budgets that apply, then judges adding
        ``extra_micros`` of commitment. The caller stores the job(s) in the same transaction."""
        return self.lock_and_check_rows(s, [{"team": team, "project": project,
                                             "sweep_id": sweep_id,
                                             "estimated_cost_micros": extra_micros}], now)

    def lock_and_check_rows(self, s: Session, rows: Sequence[dict[str, Any]],
                            now: datetime) -> Decision:
        """Like lock_and_check, for job rows that may fall under different budgets: each
        budget is judged once, against everything the rows add to it."""
        budgets: dict[int, Budget] = {}
        extra: dict[int, int] = {}
        for row in rows:
            for budget in self.applicable(s, row["team"], row["project"], row.get("sweep_id")):
                assert budget.id is not None
                budgets[budget.id] = budget
                extra[budget.id] = extra.get(budget.id, 0) + (row["estimated_cost_micros"] or 0)
        decision = Decision()
        if not budgets:
            return decision
        s.execute(update(Budget).where(col(Budget.id).in_(sorted(budgets)))
                  .values(version=Budget.version + 1))
        for budget_id in sorted(budgets):
            budget = budgets[budget_id]
            s.refresh(budget)
            _, committed = self.measure(s, budget, now)
            after = committed + extra[budget_id]
            if after <= budget.limit_micros:
                continue
            line = (f"budget '{budget.name}' ({budget.scope} {budget.scope_value}, "
                    f"{budget.period}): {usd_micros(committed)} of {usd_micros(budget.limit_micros)} "
                    f"committed; this needs {usd_micros(extra[budget_id])}, "
                    f"{usd_micros(after - budget.limit_micros)} over")
            (decision.refusals if budget.hard else decision.warnings).append(line)
        return decision

    def headroom(self, s: Session, team: str, project: str, now: datetime,
                 sweep_id: int | None = None) -> int | None:
        """The smallest room left under the hard budgets that apply (None: no hard budget)."""
        rooms = [b.limit_micros - self.measure(s, b, now)[1]
                 for b in self.applicable(s, team, project, sweep_id) if b.hard]
        return min(rooms) if rooms else None


class BudgetAdmission:
    """The dispatcher's re-check before starting jobs: hard budgets still hold the job,
    counting what is spent, what running jobs will cost and what this tick admitted."""

    def __init__(self, service: BudgetService, session: Session, now: datetime) -> None:
        self.service, self.session, self.now = service, session, now
        self._committed: dict[int, int] = {}
        self._budgets: dict[tuple[str, str, int | None], list[Budget]] = {}

    def _for(self, c: Candidate) -> list[Budget]:
        key = (c.team, c.project, c.sweep_id)
        if key not in self._budgets:
            self._budgets[key] = [b for b in BudgetService.applicable(self.session, *key)
                                  if b.hard]
        return self._budgets[key]

    def _base(self, b: Budget) -> int:
        if b.id not in self._committed:
            self._committed[b.id] = self.service.measure(self.session, b, self.now,
                                                         include_queued=False)[1]
        return self._committed[b.id]

    def refuse(self, c: Candidate) -> str | None:
        cost = c.estimated_cost_micros or 0
        for b in self._for(c):
            if self._base(b) + cost > b.limit_micros:
                return (f"budget '{b.name}' has {usd_micros(max(0, b.limit_micros - self._base(b)))} "
                        f"left; this job is estimated at {usd_micros(cost)}")
        return None

    def admit(self, c: Candidate) -> None:
        for b in self._for(c):
            self._committed[b.id] = self._base(b) + (c.estimated_cost_micros or 0)
