"""When the cheap hours are."""

from __future__ import annotations

from datetime import datetime, timedelta

from app.costs.calculator import peak_spans
from app.costs.pricing import Pricing


def next_off_peak(pricing: Pricing, now: datetime) -> datetime:
    """``now`` if it is off-peak, else the end of the current peak window."""
    spans = peak_spans(pricing, now, now + timedelta(days=2))
    if not spans or spans[0][0] > now:
        return now
    end = spans[0][1]
    for lo, hi in spans[1:]:  # windows that touch (a 24 h peak) run on
        if lo > end:
            break
        end = hi
    return end
