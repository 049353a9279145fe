"""Start times in words: "off-peak", "tonight", "22:00", "tomorrow", "tomorrow 09:00",
"in 90 minutes". The submission contract accepts them beside ISO 8601 times, so the CLI,
the API and the agent all say "off-peak" the same way; QueueService turns them into a time
in the pricing zone when the job is submitted."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, time, timedelta, tzinfo

from app.core.errors import ConfigError

START_WORDS = (r"^(?:off-peak|tonight|tomorrow(?: [0-2]\d:[0-5]\d)?|[0-2]\d:[0-5]\d|"
               r"in [1-9]\d{0,5} minutes)$")
TONIGHT = time(22, 0)
MORNING_END = time(6, 0)
# When the cheap hours begin after ``now`` (now itself if they already have).
OffPeak = Callable[[datetime], datetime]


def _clock(text: str) -> time:
    hour, minute = (int(p) for p in text.split(":"))
    if hour > 23:
        raise ConfigError(f"start time {text!r}: hours run 00 to 23")
    return time(hour, minute)


def resolve(value: str, now: datetime, zone: tzinfo,
            off_peak: OffPeak | None = None) -> datetime:
    """The moment ``value`` names, seen from ``now`` in ``zone`` (a time already past today
    means tomorrow's)."""
    if not re.match(START_WORDS, value):
        raise ConfigError(f"start time {value!r}: use ISO 8601, HH:MM, tonight, tomorrow "
                          "[HH:MM], off-peak or 'in N minutes'")
    local = now.astimezone(zone)
    if value == "off-peak":
        if off_peak is None:
            raise ConfigError("'off-peak' needs a price list with peak hours")
        return off_peak(now)
    if value.startswith("in "):
        return now + timedelta(minutes=int(value.split()[1]))
    if value == "tonight":
        if local.time() >= TONIGHT or local.time() < MORNING_END:
            return now  # it is night already
        return datetime.combine(local.date(), TONIGHT, zone)
    if value.startswith("tomorrow"):
        clock = _clock(value.split()[1]) if " " in value else time(0, 0)
        return datetime.combine(local.date() + timedelta(days=1), clock, zone)
    at = datetime.combine(local.date(), _clock(value), zone)
    return at if at > now else at + timedelta(days=1)
