"""Calendar periods in the pricing time zone: the one helper behind budget windows and cost
reports, so "this week" means the same Monday-to-Monday everywhere."""

from __future__ import annotations

from datetime import datetime, time, timedelta, tzinfo

# A calendar period's name, and the names budgets and reports use for the same periods.
PERIOD_ALIASES = {"day": "day", "week": "week", "weekly": "week", "month": "month",
                  "monthly": "month"}


def calendar_period(period: str, at: datetime, zone: tzinfo) -> tuple[datetime, datetime]:
    """The day, week (Monday first) or month holding ``at``, as seen in ``zone``: its start
    and the start of the next, both returned in ``at``'s own time zone."""
    kind = PERIOD_ALIASES.get(period)
    if kind is None:
        raise ValueError(f"unknown calendar period {period!r}")
    local = at.astimezone(zone).date()
    if kind == "day":
        first, following = local, local + timedelta(days=1)
    elif kind == "week":
        first = local - timedelta(days=local.weekday())
        following = first + timedelta(days=7)
    else:
        first = local.replace(day=1)
        following = (first + timedelta(days=32)).replace(day=1)
    return (datetime.combine(first, time(0), tzinfo=zone).astimezone(at.tzinfo),
            datetime.combine(following, time(0), tzinfo=zone).astimezone(at.tzinfo))
