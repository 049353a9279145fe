"""Learning-rate schedules, as one pure function of training progress."""

from __future__ import annotations

import math

SCHEDULES = ("constant", "linear", "exponential", "cosine", "warmup_cosine")


def learning_rate(schedule: str, base: float, step: int, total: int, warmup: int = 0,
                  final_ratio: float = 0.1) -> float:
    """The rate after `step` of `total` environment steps.

    constant: ``base``. linear: ``base`` down to 0. exponential: ``base`` down to
    ``base * final_ratio``. cosine: half a cosine from ``base`` to 0. warmup_cosine: linear from
    0 to ``base`` over ``warmup`` steps, then cosine to 0 over the rest.
    """
    total = max(total, 1)
    progress = min(max(step / total, 0.0), 1.0)
    if schedule == "constant":
        return base
    if schedule == "linear":
        return base * (1.0 - progress)
    if schedule == "exponential":
        return base * final_ratio ** progress
    if schedule == "cosine":
        return base * 0.5 * (1.0 + math.cos(math.pi * progress))
    if schedule == "warmup_cosine":
        if warmup > 0 and step < warmup:
            return base * step / warmup
        rest = max(total - warmup, 1)
        p = min(max((step - warmup) / rest, 0.0), 1.0)
        return base * 0.5 * (1.0 + math.cos(math.pi * p))
    raise ValueError(f"unknown schedule {schedule!r}")
