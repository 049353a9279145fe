"""A search space: which training options a sweep varies, and how. Parsed once, from TOML or
JSON tables or from the command line's short form, checked against the training options,
and stored normalised on the sweep.

    lr = {type = "log", low = 1e-5, high = 1e-2}          # log-uniform float
    ent_coef = {type = "uniform", low = 0.0, high = 0.05}  # uniform float
    rollout_steps = {type = "int", low = 32, high = 256, step = 32}
    clip_coef = {type = "categorical", choices = [0.1, 0.2, 0.3]}

On the command line (app.cli.sweep_cmds): ``lr=log:1e-5:1e-2``, ``ent_coef=uniform:0:0.05``,
``rollout_steps=int:32:256:32``, ``clip_coef=choice:0.1,0.2,0.3``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from app.core.errors import ConfigError

KINDS = ("log", "uniform", "int", "categorical")
ALIASES = {"loguniform": "log", "log-uniform": "log", "float": "uniform", "choice": "categorical",
           "choices": "categorical", "integer": "int"}
MAX_PARAMS = 20
MAX_CHOICES = 100
# Past this a bound is no setting anyone means, and float maths on it goes wrong.
MAX_MAGNITUDE = 1e15
# Options a sweep does not vary: what the trial is and what it runs on, not how it learns
# (a trial's workers need their CPUs, which the sweep's request fixes for every trial).
FIXED = frozenset({"exp_name", "device", "trace", "protocol", "eval_seeds", "imitate",
                   "num_workers"})

Validator = Callable[[dict[str, Any]], dict[str, Any]]
# What "N hyperparameter configs" searches when no space is given: PPO's most sensitive
# knobs around the defaults (lr and ent_coef on a log scale).
DEFAULT_SPACE: dict[str, Any] = {
    "lr": {"type": "log", "low": 1e-4, "high": 1e-3},
    "ent_coef": {"type": "log", "low": 1e-3, "high": 5e-2},
    "clip_coef": {"type": "uniform", "low": 0.1, "high": 0.3},
    "gamma": {"type": "uniform", "low": 0.99, "high": 0.999},
}


def _number(name: str, what: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"search space {name}: {what} must be a number, got {value!r}")
    if not math.isfinite(value) or abs(value) > MAX_MAGNITUDE:
        raise ConfigError(f"search space {name}: {what} must be a finite number within "
                          f"±{MAX_MAGNITUDE:g}, got {value!r}")
    return value


def _one(name: str, spec: Any) -> dict[str, Any]:
    if not isinstance(spec, Mapping):
        raise ConfigError(f"search space {name}: expected a table such as "
                          "{type = \"log\", low = 1e-5, high = 1e-2}")
    unknown = set(spec) - {"type", "low", "high", "step", "choices", "log"}
    if unknown:
        raise ConfigError(f"search space {name}: unknown key(s) {', '.join(sorted(unknown))}")
    kind = str(spec.get("type", "")).lower()
    kind = ALIASES.get(kind, kind)
    if kind not in KINDS:
        raise ConfigError(f"search space {name}: type must be one of {', '.join(KINDS)}, got "
                          f"{spec.get('type')!r}")
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"search space {name}: categorical needs a non-empty list "
                              "'choices'")
        if len(choices) > MAX_CHOICES:
            raise ConfigError(f"search space {name}: at most {MAX_CHOICES} choices")
        for choice in choices:
            if isinstance(choice, float | int) and not isinstance(choice, bool):
                _number(name, "a choice", choice)
            elif not isinstance(choice, str | bool) and choice is not None:
                raise ConfigError(f"search space {name}: a choice must be a number, a string "
                                  f"or true/false, got {choice!r}")
        if len({repr(c) for c in choices}) != len(choices):
            raise ConfigError(f"search space {name}: choices repeat")
        return {"type": kind, "choices": list(choices)}
    low, high = _number(name, "low", spec.get("low")), _number(name, "high", spec.get("high"))
    if not low < high:
        raise ConfigError(f"search space {name}: low ({low:g}) must be below high ({high:g})")
    out: dict[str, Any] = {"type": kind, "low": low, "high": high}
    if kind == "log" and low <= 0:
        raise ConfigError(f"search space {name}: a log range needs low > 0, got {low:g}")
    if kind == "int":
        if low != int(low) or high != int(high):
            raise ConfigError(f"search space {name}: an int range needs whole bounds")
        out["low"], out["high"] = int(low), int(high)
        step = spec.get("step", 1)
        step = _number(name, "step", step)
        if step != int(step) or step < 1:
            raise ConfigError(f"search space {name}: step must be a whole number ≥ 1")
        out["step"] = int(step)
        if spec.get("log"):
            if low < 1 or out["step"] != 1:
                raise ConfigError(f"search space {name}: a log int range needs low ≥ 1 and "
                                  "step 1")
            out["log"] = True
    elif spec.get("step") is not None:
        step = _number(name, "step", spec["step"])
        if kind == "log" or step <= 0:
            raise ConfigError(f"search space {name}: step applies to a uniform or int range "
                              "and must be positive")
        out["step"] = step
    return out


def parse_space(raw: Any, base: Mapping[str, Any], validate: Validator) -> dict[str, Any]:
    """The normalised space: each option exists, can be varied, and every end of its range
    (every choice) is a valid setting on top of ``base``."""
    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError("a sweep needs a search space: at least one option to vary")
    if len(raw) > MAX_PARAMS:
        raise ConfigError(f"a search space varies at most {MAX_PARAMS} options")
    known = validate(dict(base))
    space: dict[str, Any] = {}
    for name, spec in raw.items():
        if not isinstance(name, str) or name not in known:
            raise ConfigError(f"search space: {name!r} is not a training option")
        if name in FIXED:
            raise ConfigError(f"search space: {name} is not a hyperparameter a sweep can vary")
        entry = _one(name, spec)
        values = entry["choices"] if entry["type"] == "categorical" \
            else [entry["low"], entry["high"]]
        for value in values:
            try:
                validate({**base, name: value})
            except ConfigError as exc:
                raise ConfigError(f"search space {name}: {value!r} is not a valid setting "
                                  f"({exc})") from None
        default = known[name]
        if entry["type"] in ("log", "uniform") and isinstance(default, int) \
                and not isinstance(default, bool):
            raise ConfigError(f"search space {name}: the option is a whole number; use "
                              "type \"int\"")
        space[name] = entry
    return space


def distributions(space: Mapping[str, Any]) -> dict[str, Any]:
    """Optuna's distributions for a normalised space."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    out: dict[str, Any] = {}
    for name, entry in space.items():
        kind = entry["type"]
        if kind == "categorical":
            out[name] = CategoricalDistribution(entry["choices"])
        elif kind == "int":
            out[name] = IntDistribution(entry["low"], entry["high"], log=bool(entry.get("log")),
                                        step=entry.get("step", 1))
        else:
            out[name] = FloatDistribution(float(entry["low"]), float(entry["high"]),
                                          log=kind == "log", step=entry.get("step"))
    return out


def grid_values(space: Mapping[str, Any]) -> dict[str, list[Any]]:
    """Every setting of each option, for the grid sampler: choices, or an int range's steps
    (a float range has no finite grid)."""
    grid: dict[str, list[Any]] = {}
    for name, entry in space.items():
        if entry["type"] == "categorical":
            grid[name] = list(entry["choices"])
        elif entry["type"] == "int" and not entry.get("log"):
            grid[name] = list(range(entry["low"], entry["high"] + 1, entry.get("step", 1)))
        else:
            raise ConfigError(f"the grid sampler needs a finite set of values: give {name} as "
                              "choices (choice:A,B,C) or an int range")
    return grid


def describe(entry: Mapping[str, Any]) -> str:
    """One option's range in the command line's short form."""
    if entry["type"] == "categorical":
        return "choice:" + ",".join(str(c) for c in entry["choices"])
    text = f"{entry['type']}:{entry['low']:g}:{entry['high']:g}"
    return text + (f":{entry['step']:g}" if entry.get("step") not in (None, 1) else "")


def from_lists(values: Mapping[str, Any], grid: bool = False) -> dict[str, Any]:
    """The short form the agent's tool takes: option -> [low, high] (a range: log when it
    spans a factor of 10 or more, int when both ends are whole) or a list of choices; for a
    grid every list is a set of choices. Tables pass through unchanged."""
    raw: dict[str, Any] = {}
    for name, spec in values.items():
        if isinstance(spec, Mapping):
            raw[name] = dict(spec)
            continue
        if not isinstance(spec, list) or not spec:
            raise ConfigError(f"search space {name}: expected [low, high] or a list of choices")
        numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in spec)
        if grid or len(spec) != 2 or not numbers or not spec[0] < spec[1]:
            raw[name] = {"type": "categorical", "choices": list(spec)}
        elif all(isinstance(v, int) for v in spec):
            raw[name] = {"type": "int", "low": spec[0], "high": spec[1]}
        elif spec[0] > 0 and spec[1] / spec[0] >= 10:
            raw[name] = {"type": "log", "low": spec[0], "high": spec[1]}
        else:
            raw[name] = {"type": "uniform", "low": spec[0], "high": spec[1]}
    return raw
