"""Pick-mode policies under RLScheduler's evaluation protocol (Zhang et al., SC'20): windows of
1,024 consecutive jobs of a trace, replayed with that code's semantics (simrs's
`protocol="rlscheduler"`), without and with shadow backfilling. On lublin_256 the windows are
the ten RLScheduler published, so the heuristics' rows equal its table."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from app.core.errors import ConfigError

WINDOW_LEN = 1024
BACKFILLS = {"none": "no_backfill", "shadow": "shadow_backfill"}


def windows(num_jobs: int, seeds: Sequence[int] | None = None) -> list[int]:
    """RLScheduler's window starts when the trace is long enough for them and no seeds are
    given; otherwise one start per seed, drawn uniformly."""
    import simrs

    if num_jobs < WINDOW_LEN:
        raise ConfigError(f"the rlscheduler protocol needs at least {WINDOW_LEN} jobs; the "
                          f"trace has {num_jobs}")
    published = list(simrs.RLSCHEDULER_WINDOWS)
    if seeds is None and max(published) + WINDOW_LEN <= num_jobs:
        return published
    return [int(np.random.default_rng(s).integers(0, num_jobs - WINDOW_LEN + 1))
            for s in (seeds or (42, 43, 44))]


def _window_metrics(env: Any, start: int, choose: Any) -> dict[str, float]:
    obs, info = env.reset(options={"start": start})
    done = False
    while not done:
        obs, _, done, _, info = env.step(choose(env, obs, info["action_mask"]))
    return env.metrics()


def evaluate_protocol(cfg: Any, choosers: dict[str, Any],
                      seeds: Sequence[int] | None = None,
                      on_progress: Any | None = None) -> dict[str, dict[str, float]]:
    """Per chooser: mean bounded slowdown and wait over the windows, without and with shadow
    backfilling; `mean_bounded_slowdown` and `mean_wait_s` repeat the run's own setting."""
    import simrs

    trace = cfg.env_options()["trace"]
    starts = windows(trace.num_jobs, seeds)
    table: dict[str, dict[str, float]] = {}
    for name, choose in choosers.items():
        row: dict[str, float] = {}
        for backfill, label in BACKFILLS.items():
            env = simrs.ClusterEnv("pick", None, 0, reward=cfg.reward, window=cfg.window,
                                   backfill=backfill, trace=trace, episode_length=WINDOW_LEN,
                                   protocol="rlscheduler")
            runs = [_window_metrics(env, s, choose) for s in starts]
            row[f"bsld_{label}"] = float(np.mean([r["mean_bounded_slowdown"] for r in runs]))
            row[f"wait_{label}_s"] = float(np.mean([r["mean_wait_s"] for r in runs]))
        own = BACKFILLS[cfg.backfill]
        row["mean_bounded_slowdown"] = row[f"bsld_{own}"]
        row["mean_wait_s"] = row[f"wait_{own}_s"]
        table[name] = row
        if on_progress is not None:
            on_progress(name, len(table), len(choosers))
    return table
