"""The price list: hourly rates per resource, peak windows, multipliers and spot terms, read
from a TOML file as exact decimals.

The default file (``default_pricing.toml`` beside this module) documents where each number
comes from; the ``pricing_file`` setting (``OPPEN_PRICING_FILE``) names another. The Kubernetes platform ships the same file
as a ConfigMap.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from datetime import time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from app.core.errors import ConfigError

DEFAULT_PRICING_FILE = Path(__file__).with_name("default_pricing.toml")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class PeakWindow:
    """Peak hours: ``start`` to ``end`` local time on ``days`` (an end at or before the start
    runs past midnight into the next day)."""

    days: frozenset[int]  # 0 = Monday
    start: time
    end: time
    off_peak_discount: Decimal


@dataclass(frozen=True)
class SpotTerms:
    discount: Decimal
    interruptions_per_hour: Decimal
    lost_minutes_per_interruption: Decimal

    def duration_factor(self) -> Decimal:
        """Expected running time per hour of work: each interruption re-does lost minutes."""
        return 1 + self.interruptions_per_hour * self.lost_minutes_per_interruption / 60


@dataclass(frozen=True)
class Pricing:
    currency: str
    zone: ZoneInfo
    cpu_core_hour: Decimal
    memory_gb_hour: Decimal
    gpu_hour: Decimal
    peak: PeakWindow
    priority_multipliers: dict[str, Decimal]
    spot: SpotTerms
    instance_types: dict[str, Decimal] = field(default_factory=dict)
    source: str = ""

    def base_hourly(self, cpus: float | Decimal, memory_gb: float | Decimal, gpus: int,
                    instance_type: str | None = None) -> Decimal:
        """Dollars per peak hour for the resources, before multipliers and discounts."""
        if instance_type is not None:
            if instance_type not in self.instance_types:
                known = ", ".join(sorted(self.instance_types)) or "none configured"
                raise ConfigError(f"no price for instance type {instance_type!r} ({known})")
            return self.instance_types[instance_type]
        return (_dec(cpus) * self.cpu_core_hour + _dec(memory_gb) * self.memory_gb_hour
                + Decimal(gpus) * self.gpu_hour)

    def multiplier(self, priority_class: str, spot: bool) -> Decimal:
        if priority_class not in self.priority_multipliers:
            raise ConfigError(f"no price multiplier for priority {priority_class!r}")
        m = self.priority_multipliers[priority_class]
        return m * (1 - self.spot.discount) if spot else m


def _dec(value: float | Decimal | int) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _decimal(data: dict[str, Any], key: str, where: str, default: str | None = None,
             at_most: Decimal | None = None) -> Decimal:
    if key not in data:
        if default is None:
            raise ConfigError(f"{where}: missing {key}")
        return Decimal(default)
    try:
        value = Decimal(str(data[key]))
    except InvalidOperation:
        raise ConfigError(f"{where}: {key} is not a number: {data[key]!r}") from None
    if not value.is_finite() or value < 0:
        raise ConfigError(f"{where}: {key} must be a number of at least 0")
    if at_most is not None and value > at_most:
        raise ConfigError(f"{where}: {key} must be at most {at_most}")
    return value


def _clock(value: Any, where: str) -> time:
    try:
        hours, minutes = str(value).split(":")
        return time(int(hours), int(minutes))
    except ValueError:
        raise ConfigError(f"{where}: {value!r} is not a time of day like 09:00") from None


def _table(data: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: [{key}] must be a table")
    return value


def parse_pricing(data: dict[str, Any], where: str) -> Pricing:
    known = {"currency", "timezone", "rates", "peak", "priority_multipliers", "spot",
             "instance_types"}
    unknown = set(data) - known
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    try:
        zone = ZoneInfo(str(data.get("timezone", "UTC")))
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{where}: unknown time zone {data.get('timezone')!r}") from None
    rates = _table(data, "rates", where)
    peak = _table(data, "peak", where)
    days = peak.get("days", list(WEEKDAYS[:5]))
    if not isinstance(days, list) or any(d not in WEEKDAYS for d in days):
        raise ConfigError(f"{where}: [peak] days must be a list of {', '.join(WEEKDAYS)}")
    multipliers = _table(data, "priority_multipliers", where)
    for name in ("urgent", "normal", "background"):
        multipliers.setdefault(name, "1")
    spot = _table(data, "spot", where)
    types = _table(data, "instance_types", where)
    return Pricing(
        currency=str(data.get("currency", "USD")),
        zone=zone,
        cpu_core_hour=_decimal(rates, "cpu_core_hour", f"{where} [rates]"),
        memory_gb_hour=_decimal(rates, "memory_gb_hour", f"{where} [rates]"),
        gpu_hour=_decimal(rates, "gpu_hour", f"{where} [rates]"),
        peak=PeakWindow(
            days=frozenset(WEEKDAYS.index(d) for d in days),
            start=_clock(peak.get("start", "09:00"), f"{where} [peak] start"),
            end=_clock(peak.get("end", "18:00"), f"{where} [peak] end"),
            off_peak_discount=_decimal(peak, "off_peak_discount", f"{where} [peak]", "0.5",
                                       at_most=Decimal(1)),
        ),
        priority_multipliers={k: _decimal(multipliers, k, f"{where} [priority_multipliers]")
                              for k in multipliers},
        spot=SpotTerms(
            discount=_decimal(spot, "discount", f"{where} [spot]", "0.7", at_most=Decimal(1)),
            interruptions_per_hour=_decimal(spot, "interruptions_per_hour", f"{where} [spot]",
                                            "0"),
            lost_minutes_per_interruption=_decimal(spot, "lost_minutes_per_interruption",
                                                   f"{where} [spot]", "0"),
        ),
        instance_types={name: _decimal(_table(types, name, f"{where} [instance_types]"),
                                       "hourly", f"{where} [instance_types.{name}]")
                        for name in types},
        source=where,
    )


def load_pricing(path: Path | None = None) -> Pricing:
    """Reads the price list (default: the bundled one); errors name the file and the key.
    Settings carry the configured path (``OPPEN_PRICING_FILE``)."""
    path = path or DEFAULT_PRICING_FILE
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"pricing file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    return parse_pricing(data, str(path))
