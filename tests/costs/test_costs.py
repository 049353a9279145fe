"""Prices computed by hand for every kind of pricing boundary, and bad price files."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from app.core.errors import ConfigError
from app.costs.calculator import Shape, interval_cost
from app.costs.pricing import DEFAULT_PRICING_FILE, load_pricing, parse_pricing

GPU = Shape(cpus=0, memory_gb=0, gpus=1)  # $0.95 per peak hour, nothing else


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture
def pricing():
    return load_pricing(DEFAULT_PRICING_FILE)


def zoned(zone: str):
    data = tomllib.loads(DEFAULT_PRICING_FILE.read_text())
    data["timezone"] = zone
    return parse_pricing(data, "test")


def test_defaults_are_opencosts_and_the_window_is_weekdays_9_to_18_utc(pricing) -> None:
    assert pricing.cpu_core_hour == Decimal("0.031611")
    assert pricing.memory_gb_hour == Decimal("0.004237")
    assert pricing.gpu_hour == Decimal("0.95")
    assert str(pricing.zone) == "UTC"
    assert pricing.peak.days == frozenset(range(5))


def test_a_run_across_the_end_of_peak_is_priced_in_two_parts(pricing) -> None:
    # Tue 17:30-19:30: 0.5 h at peak + 1.5 h at half price = 1.25 peak-hours x $0.95.
    cost = interval_cost(pricing, utc(2026, 11, 24, 17, 30), utc(2026, 11, 24, 19, 30), GPU)
    assert cost.micros == 1_187_500
    assert (cost.peak_hours, cost.off_peak_hours) == (Decimal("0.5"), Decimal("1.5"))
    assert [p.peak for p in cost.pieces] == [True, False]


def test_midnight_and_weekends_are_off_peak(pricing) -> None:
    # Fri 23:00 -> Sat 01:00, and Saturday 10:00-12:00: 2 h at half price each.
    assert interval_cost(pricing, utc(2026, 11, 27, 23), utc(2026, 11, 28, 1), GPU).micros \
        == 950_000
    assert interval_cost(pricing, utc(2026, 11, 28, 10), utc(2026, 11, 28, 12), GPU).micros \
        == 950_000


def test_a_whole_weekday_and_a_whole_week(pricing) -> None:
    # Monday: 9 peak hours + 15 at half = 16.5 x 0.95.
    assert interval_cost(pricing, utc(2026, 11, 23), utc(2026, 11, 24), GPU).micros == 15_675_000
    # Mon 00:00 -> next Mon 00:00: 45 peak + 123 off-peak hours = 106.5 x 0.95.
    week = interval_cost(pricing, utc(2026, 11, 23), utc(2026, 11, 30), GPU)
    assert (week.peak_hours, week.off_peak_hours) == (Decimal(45), Decimal(123))
    assert week.micros == 101_175_000


def test_daylight_saving_moves_the_window_in_utc() -> None:
    ny = zoned("America/New_York")
    # Friday 6 March 2026 (EST, UTC-5): peak opens 14:00 UTC, so 12:00-14:00 UTC is off-peak.
    assert interval_cost(ny, utc(2026, 3, 6, 12), utc(2026, 3, 6, 14), GPU).micros == 950_000
    # Monday 9 March 2026 (EDT, UTC-4, since Sunday): peak opens 13:00 UTC: 1 h peak, 1 h off.
    assert interval_cost(ny, utc(2026, 3, 9, 12), utc(2026, 3, 9, 14), GPU).micros == 1_425_000
    # The weekend the clocks change has 47 hours: Sat 00:00 -> Mon 00:00 local, all off-peak.
    zone = ZoneInfo("America/New_York")
    start = datetime(2026, 3, 7, tzinfo=zone)
    end = datetime(2026, 3, 9, tzinfo=zone)
    cost = interval_cost(ny, start, end, GPU)
    assert cost.off_peak_hours == Decimal(47) and cost.peak_hours == 0
    assert cost.micros == 22_325_000


def test_resources_priority_and_spot(pricing) -> None:
    hour = (utc(2026, 11, 24, 10), utc(2026, 11, 24, 11))  # a peak hour
    # 2 cores + 4 GB: 2 x 0.031611 + 4 x 0.004237 = 0.08017.
    assert interval_cost(pricing, *hour, Shape(cpus=2, memory_gb=4)).micros == 80_170
    assert interval_cost(pricing, *hour, Shape(0, 0, 1, "urgent")).micros == 1_425_000
    assert interval_cost(pricing, *hour, Shape(0, 0, 1, "background")).micros == 760_000
    assert interval_cost(pricing, *hour, Shape(0, 0, 1, spot=True)).micros == 285_000
    # Background on spot, off-peak: 0.95 x 0.8 x 0.3 x 0.5.
    night = (utc(2026, 11, 24, 20), utc(2026, 11, 24, 21))
    assert interval_cost(pricing, *night, Shape(0, 0, 1, "background", True)).micros == 114_000


def test_money_is_exact_and_rounded_once(pricing) -> None:
    # One second of one core at peak: 0.031611 / 3600 = 8.78 micro-dollars -> 9.
    second = interval_cost(pricing, utc(2026, 11, 24, 10), utc(2026, 11, 24, 10, 0, 1),
                           Shape(cpus=1, memory_gb=0))
    assert second.micros == 9
    # 3,600 one-second pieces summed exactly equal the hour (no drift).
    hour = interval_cost(pricing, utc(2026, 11, 24, 10), utc(2026, 11, 24, 11),
                         Shape(cpus=1, memory_gb=0))
    assert hour.micros == 31_611
    assert interval_cost(pricing, utc(2026, 11, 24, 10), utc(2026, 11, 24, 10), GPU).micros == 0


def test_instance_type_prices_replace_resource_rates() -> None:
    data = tomllib.loads(DEFAULT_PRICING_FILE.read_text())
    data["instance_types"] = {"g5.xlarge": {"hourly": "1.006"}}
    p = parse_pricing(data, "test")
    cost = interval_cost(p, utc(2026, 11, 24, 10), utc(2026, 11, 24, 12),
                         Shape(instance_type="g5.xlarge"))
    assert cost.micros == 2_012_000
    with pytest.raises(ConfigError, match="no price for instance type 'p4d'"):
        interval_cost(p, utc(2026, 11, 24, 10), utc(2026, 11, 24, 12), Shape(instance_type="p4d"))


def test_backwards_and_naive_intervals_are_refused(pricing) -> None:
    with pytest.raises(ConfigError, match="ends .* before it starts"):
        interval_cost(pricing, utc(2026, 11, 24, 12), utc(2026, 11, 24, 10), GPU)
    with pytest.raises(ConfigError, match="time zone"):
        interval_cost(pricing, datetime(2026, 11, 24), utc(2026, 11, 24, 10), GPU)


@pytest.mark.parametrize("text,message", [
    ('[rates]\ncpu_core_hour = "x"\nmemory_gb_hour = "1"\ngpu_hour = "1"', "not a number"),
    ('[rates]\ncpu_core_hour = "-1"\nmemory_gb_hour = "1"\ngpu_hour = "1"', "at least 0"),
    ('[rates]\nmemory_gb_hour = "1"\ngpu_hour = "1"', "missing cpu_core_hour"),
    ('timezone = "Mars/Olympus"\n[rates]\ncpu_core_hour = 1\nmemory_gb_hour = 1\ngpu_hour = 1',
     "unknown time zone"),
    ('[rates]\ncpu_core_hour = 1\nmemory_gb_hour = 1\ngpu_hour = 1\n[peak]\nstart = "9am"',
     "not a time of day"),
    ('[rates]\ncpu_core_hour = 1\nmemory_gb_hour = 1\ngpu_hour = 1\n[peak]\ndays = ["funday"]',
     "days must be"),
    ('[rates]\ncpu_core_hour = 1\nmemory_gb_hour = 1\ngpu_hour = 1\n[spot]\ndiscount = "1.5"',
     "at most 1"),
    ("rates = [", "not valid TOML"),
    ('colour = "blue"', "unknown key"),
])
def test_malformed_price_files_are_clear_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "pricing.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_pricing(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_pricing(tmp_path / "missing.toml")
