"""The exact cost of running resources over a time interval.

The interval is cut at every pricing boundary — the start and end of each day's peak window
in the pricing time zone, which moves with daylight-saving changes and skips non-peak days —
and each piece is priced at its own rate:

    cost = base_hourly x multiplier x sum over pieces of (hours x (1 - discount if off-peak))

with ``base_hourly`` from the per-resource rates (or an instance type's price), and
``multiplier`` the priority class's (x (1 - spot discount) on spot). Arithmetic is Decimal
throughout and the result is rounded once, to whole micro-dollars.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from app.core.errors import ConfigError
from app.core.money import to_micros
from app.costs.pricing import Pricing

SECONDS_PER_HOUR = Decimal(3600)


@dataclass(frozen=True)
class Shape:
    """What a job holds while it runs."""

    cpus: float = 1.0
    memory_gb: float = 1.0
    gpus: int = 0
    priority_class: str = "normal"
    spot: bool = False
    instance_type: str | None = None


@dataclass(frozen=True)
class Piece:
    start: datetime
    end: datetime
    peak: bool

    @property
    def hours(self) -> Decimal:
        delta = self.end - self.start
        micro = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
        return Decimal(micro) / SECONDS_PER_HOUR / 1_000_000


@dataclass(frozen=True)
class Cost:
    micros: int
    peak_hours: Decimal
    off_peak_hours: Decimal
    pieces: tuple[Piece, ...]


def peak_spans(pricing: Pricing, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """Peak windows (UTC) overlapping [start, end), from the local calendar of the zone."""
    zone, peak = pricing.zone, pricing.peak
    first = start.astimezone(zone).date() - timedelta(days=1)
    last = end.astimezone(zone).date()
    spans = []
    day: date = first
    while day <= last:
        if day.weekday() in peak.days:
            opens = datetime.combine(day, peak.start, tzinfo=zone)
            close_day = day if peak.end > peak.start else day + timedelta(days=1)
            closes = datetime.combine(close_day, peak.end, tzinfo=zone)
            lo, hi = max(start, opens.astimezone(UTC)), min(end, closes.astimezone(UTC))
            if lo < hi:
                spans.append((lo, hi))
        day += timedelta(days=1)
    return spans


def split(pricing: Pricing, start: datetime, end: datetime) -> list[Piece]:
    """[start, end) as consecutive peak and off-peak pieces."""
    pieces, cursor = [], start
    for lo, hi in peak_spans(pricing, start, end):
        if cursor < lo:
            pieces.append(Piece(cursor, lo, False))
        pieces.append(Piece(max(cursor, lo), hi, True))
        cursor = max(cursor, hi)
    if cursor < end:
        pieces.append(Piece(cursor, end, False))
    return pieces


def interval_cost(pricing: Pricing, start: datetime, end: datetime, shape: Shape) -> Cost:
    if start.tzinfo is None or end.tzinfo is None:
        raise ConfigError("times must carry a time zone")
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    if end < start:
        raise ConfigError(f"the interval ends ({end.isoformat()}) before it starts "
                          f"({start.isoformat()})")
    memory = Decimal(str(shape.memory_gb))
    hourly = pricing.base_hourly(shape.cpus, memory, shape.gpus, shape.instance_type) \
        * pricing.multiplier(shape.priority_class, shape.spot)
    pieces = split(pricing, start, end)
    off = 1 - pricing.peak.off_peak_discount
    peak_h = sum((p.hours for p in pieces if p.peak), Decimal(0))
    off_h = sum((p.hours for p in pieces if not p.peak), Decimal(0))
    return Cost(to_micros(hourly * (peak_h + off_h * off)), peak_h, off_h, tuple(pieces))
