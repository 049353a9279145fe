"""Priority classes, matching the Kubernetes PriorityClasses Terraform creates."""

from __future__ import annotations

from app.core.errors import ConfigError

PRIORITY_CLASSES: dict[str, int] = {"urgent": 1000, "normal": 100, "background": 10}


def priority_value(name: str) -> int:
    try:
        return PRIORITY_CLASSES[name]
    except KeyError:
        choices = ", ".join(PRIORITY_CLASSES)
        raise ConfigError(f"unknown priority {name!r}; choose one of {choices}") from None
