"""What was spent over a calendar period, grouped by team, project, priority or outcome, with
the trend against the period before and a chart.

A part of CostService (app/costs/service.py), which composes the parts over one set of
dependencies."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select

from app.core.errors import ConfigError
from app.core.models import Job
from app.core.money import usd, usd_text
from app.core.planning import ACTIVE_STATES
from app.core.queue import QueueService
from app.core.timeutil import as_utc, utcnow
from app.core.tracking import Tracker
from app.costs.budgets import BudgetService
from app.costs.constants import GROUPS, PERIODS
from app.costs.periods import calendar_period
from app.costs.pricing import Pricing


class Reports:
    """Spend over a calendar period, grouped, with its trend.
    It reads the attributes below, which CostService holds."""

    pricing: Pricing
    queue: QueueService
    budgets: BudgetService
    tracker: Tracker | None

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
        by_day_group: dict[tuple[date, str], int] = defaultdict(int)
        for r in current:
            when = r["at"].astimezone(self.pricing.zone).date()
            by_day[when] += r["micros"]
            by_day_group[when, str(r[group_by])] += r["micros"]
        day, days = start.astimezone(self.pricing.zone).date(), []
        while day < end.astimezone(self.pricing.zone).date():
            days.append({"date": day.isoformat(), "cost_usd": usd_text(by_day.get(day, 0)),
                         "groups": {key: usd_text(by_day_group[day, key])
                                    for key in sorted(groups) if (day, key) in by_day_group}})
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


def report_chart(report: dict[str, Any], path: Path) -> Path:
    """A PNG bar chart of the period's spend per day, each day's bar stacked by the report's
    grouping (team, project, priority or status), the total in the title with enough digits
    to be non-zero when it is."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    days = [d["date"][5:] for d in report["by_day"]]
    keys = [g["key"] for g in report["groups"]]
    fig, ax = plt.subplots(figsize=(max(4, len(days) * 0.45), 3))
    bottom = [0.0] * len(days)
    for key in keys or [None]:
        values = [float(d.get("groups", {}).get(key, 0)) if key is not None
                  else float(d["cost_usd"]) for d in report["by_day"]]
        ax.bar(days, values, bottom=bottom, label=str(key) if key is not None else None)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    if keys:
        ax.legend(title=report["group_by"], fontsize=7, title_fontsize=7)
    ax.set_ylabel(f"spend ({report.get('currency', 'USD')})")
    ax.set_title(f"Spend per day by {report['group_by']}, {report['period']} from "
                 f"{report['start'][:10]} (total {usd(report['total_usd'])})")
    ax.tick_params(axis="x", labelrotation=60, labelsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
