"""The samplers and pruners a sweep may use, built from their names."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from app.core.errors import ConfigError
from app.sweeps.space import grid_values

SAMPLERS = ("tpe", "random", "grid", "qmc", "cmaes")
PRUNERS = ("median", "successive_halving", "hyperband", "none")
# Trials a median pruner lets finish before it compares (Optuna's default is 5; a sweep of
# short trials wants a verdict sooner).
STARTUP_TRIALS = 3


def check_sampler(name: str, space: Mapping[str, Any]) -> None:
    if name not in SAMPLERS:
        raise ConfigError(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}")
    if name == "grid":
        grid_values(space)
    if name == "cmaes" and all(e["type"] == "categorical" for e in space.values()):
        raise ConfigError("CMA-ES searches numeric ranges; this space has only choices "
                          "(use tpe or grid)")


def grid_size(space: Mapping[str, Any]) -> int:
    size = 1
    for values in grid_values(space).values():
        size *= len(values)
    return size


def seed_for(name: str, seed: int | None, asked: int) -> int | None:
    """The seed for a sampler made to ask trial number ``asked``. Samplers are made afresh
    for each ask (the dispatcher holds no study between ticks), so the seed moves on with
    the trials; QMC's and the grid's keep it, since they index their sequence by trial."""
    if seed is None or name in ("qmc", "grid"):
        return seed
    return (seed * 1_000_003 + asked) % 2**32


def sampler(name: str, seed: int | None, space: Mapping[str, Any]) -> Any:
    import optuna

    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=STARTUP_TRIALS + 2)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "grid":
        return optuna.samplers.GridSampler(grid_values(space), seed=seed)
    if name == "qmc":
        # Optuna marks QMC experimental and warns at every construction; the dispatcher
        # makes a sampler for each ask, so its log would carry the warning once per trial.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False)
    if name == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    raise ConfigError(f"unknown sampler {name!r}")


def pruner(name: str, steps: int) -> Any:
    """``steps``: a trial's training steps, the scale its reports are made on."""
    import optuna

    if name == "median":
        # An RL run's first evaluations say little about where it ends: no verdict before
        # a quarter of its steps.
        return optuna.pruners.MedianPruner(n_startup_trials=STARTUP_TRIALS,
                                           n_warmup_steps=steps // 4)
    if name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=max(1, steps // 8),
                                              max_resource=max(2, steps))
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ConfigError(f"unknown pruner {name!r}")
