"""Hyperparameter sweeps: a grid (every combination) or random samples (seeded) of training
configs, expanded here and submitted by the caller as one batch."""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Mapping, Sequence
from typing import Any

from app.core.errors import ConfigError

MAX_SWEEP = 1000
# What "N hyperparameter configs" searches when no space is given: PPO's most sensitive
# knobs around the defaults (lr and ent_coef on a log scale).
DEFAULT_SPACE: dict[str, Any] = {"lr": [1e-4, 1e-3], "ent_coef": [1e-3, 5e-2],
                                 "clip_coef": [0.1, 0.3], "gamma": [0.99, 0.999]}


def grid(base: Mapping[str, Any], values: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of ``values`` (option -> list of settings) on top of ``base``."""
    if not values:
        raise ConfigError("a grid needs at least one option with a list of values")
    for name, options in values.items():
        if not isinstance(options, list | tuple) or not options:
            raise ConfigError(f"grid option {name}: expected a non-empty list of values")
    size = math.prod(len(v) for v in values.values())
    if size > MAX_SWEEP:
        raise ConfigError(f"the grid has {size} combinations; at most {MAX_SWEEP}")
    names = list(values)
    return [{**base, **dict(zip(names, combo, strict=True))}
            for combo in itertools.product(*(values[n] for n in names))]


def sample(base: Mapping[str, Any], space: Mapping[str, Any], n: int,
           seed: int = 0) -> list[dict[str, Any]]:
    """``n`` random configs. A [low, high] pair of numbers is a range (log-uniform when it
    spans a factor of 10 or more, whole numbers when both ends are); any other list is a set
    of choices."""
    if not 1 <= n <= MAX_SWEEP:
        raise ConfigError(f"a random sweep has 1 to {MAX_SWEEP} configs, got {n}")
    rng = random.Random(seed)
    draws = {name: _sampler(name, spec) for name, spec in space.items()}
    return [{**base, **{name: draw(rng) for name, draw in draws.items()}} for _ in range(n)]


def _sampler(name: str, spec: Any) -> Any:
    if not isinstance(spec, list | tuple) or not spec:
        raise ConfigError(f"sweep option {name}: expected [low, high] or a list of choices")
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in spec)
    if len(spec) == 2 and numbers and spec[0] < spec[1]:
        low, high = spec
        if isinstance(low, int) and isinstance(high, int):
            return lambda rng: rng.randint(low, high)
        if low > 0 and high / low >= 10:
            return lambda rng: math.exp(rng.uniform(math.log(low), math.log(high)))
        return lambda rng: rng.uniform(low, high)
    choices = list(spec)
    return lambda rng: rng.choice(choices)
