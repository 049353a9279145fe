"""The price list: hourly rates per resource, read from a TOML file as exact decimals.

The default file (``default_pricing.toml`` beside this module) documents where each number
comes from; ``OPPEN_PRICING_FILE`` names another. The Kubernetes platform ships the same file
as a ConfigMap.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from app.core.errors import ConfigError

DEFAULT_PRICING_FILE = Path(__file__).with_name("default_pricing.toml")
MICROS_PER_DOLLAR = Decimal(1_000_000)


@dataclass(frozen=True)
class Pricing:
    currency: str
    timezone: str
    cpu_core_hour: Decimal
    memory_gb_hour: Decimal
    gpu_hour: Decimal
    priority_multipliers: dict[str, Decimal]
    source: str

    def hourly(self, cpus: float, memory_mb: int, gpus: int, priority_class: str) -> Decimal:
        """Dollars per hour for these resources at this priority (no time-of-day terms)."""
        base = (Decimal(str(cpus)) * self.cpu_core_hour
                + Decimal(memory_mb) / Decimal(1024) * self.memory_gb_hour
                + Decimal(gpus) * self.gpu_hour)
        return base * self.priority_multipliers.get(priority_class, Decimal(1))


def to_micros(dollars: Decimal) -> int:
    return int((dollars * MICROS_PER_DOLLAR).to_integral_value())


def _decimal(data: dict[str, Any], key: str, where: str) -> Decimal:
    if key not in data:
        raise ConfigError(f"{where}: missing {key}")
    try:
        value = Decimal(str(data[key]))
    except InvalidOperation:
        raise ConfigError(f"{where}: {key} is not a number: {data[key]!r}") from None
    if value < 0:
        raise ConfigError(f"{where}: {key} must not be negative")
    return value


def load_pricing(path: Path | None = None) -> Pricing:
    """Reads the price list; errors name the file and the key."""
    named = os.environ.get("OPPEN_PRICING_FILE")
    path = path or (Path(named) if named else DEFAULT_PRICING_FILE)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"pricing file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    rates = data.get("rates", {})
    multipliers = {name: _decimal(data.get("priority_multipliers", {}), name,
                                  f"{path} [priority_multipliers]")
                   for name in data.get("priority_multipliers", {})}
    return Pricing(
        currency=str(data.get("currency", "USD")),
        timezone=str(data.get("timezone", "UTC")),
        cpu_core_hour=_decimal(rates, "cpu_core_hour", f"{path} [rates]"),
        memory_gb_hour=_decimal(rates, "memory_gb_hour", f"{path} [rates]"),
        gpu_hour=_decimal(rates, "gpu_hour", f"{path} [rates]"),
        priority_multipliers=multipliers,
        source=str(path),
    )
