"""Heuristic replays of SWF traces through simrs: the RLScheduler-compatible protocol (to set
simrs beside published numbers) and the textbook full replay."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.core.errors import ConfigError, NotFoundError

PROTOCOLS = ("rlscheduler", "full")
METRICS = ("bsld", "util")


@dataclass(frozen=True)
class ReplayResult:
    trace: str
    policy: str
    backfill: str
    protocol: str
    metric: str
    windows: list[dict[str, Any]] = field(default_factory=list)
    mean: float = 0.0
    details: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"trace": self.trace, "policy": self.policy, "backfill": self.backfill,
                "protocol": self.protocol, "metric": self.metric, "windows": self.windows,
                "mean": self.mean, "details": self.details}


def _load(path: Path, load_scale: float) -> Any:
    import simrs

    if not path.is_file():
        raise NotFoundError(f"trace not found: {path}")
    try:
        return simrs.load_trace(path, load_scale=load_scale)
    except simrs.TraceError as exc:
        raise ConfigError(str(exc)) from None


def replay(trace_path: str | Path, policy: str, backfill: str = "none",
           protocol: str = "full", metric: str = "bsld", placement: str = "first_fit",
           load_scale: float = 1.0, start: int = 0, length: int | None = None) -> ReplayResult:
    import simrs

    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {protocol!r}; choose {', '.join(PROTOCOLS)}")
    if metric not in METRICS:
        raise ConfigError(f"unknown metric {metric!r}; choose {', '.join(METRICS)}")
    rules = simrs.PRIORITIES + simrs.CLAIRVOYANT_PRIORITIES
    if policy not in rules:
        raise ConfigError(f"unknown policy {policy!r}; choose {', '.join(rules)}")
    if backfill not in simrs.BACKFILLS:
        raise ConfigError(f"unknown backfill {backfill!r}; choose {', '.join(simrs.BACKFILLS)}")
    if protocol == "rlscheduler" and backfill == "easy":
        raise ConfigError("the rlscheduler protocol has backfill none or shadow, not easy")
    path = Path(trace_path)
    trace = _load(path, load_scale)
    if protocol == "rlscheduler":
        starts = list(simrs.RLSCHEDULER_WINDOWS)
        values = simrs.replay_compat(trace, policy, starts, backfill == "shadow", metric,
                                     simrs.RLSCHEDULER_WINDOW_LEN)
        windows = [{"start": s, "length": simrs.RLSCHEDULER_WINDOW_LEN, "value": v}
                   for s, v in zip(starts, values, strict=True)]
        return ReplayResult(str(path), policy, backfill, protocol, metric, windows,
                            statistics.fmean(values))
    try:
        details = simrs.replay_trace(trace, policy, placement, backfill, start, length)
    except simrs.SimrsError as exc:
        raise ConfigError(str(exc)) from None
    value = details["mean_bounded_slowdown"] if metric == "bsld" else details["utilization"]
    windows = [{"start": start, "length": int(details["jobs"]), "value": value}]
    return ReplayResult(str(path), policy, backfill, protocol, metric, windows, value, details)


def replay_workload(config_path: str | Path, policy: str, placement: str = "first_fit",
                    metric: str = "bsld", seeds: list[int] | None = None) -> ReplayResult:
    """A heuristic pair (`policy` picks a job from the whole queue, `placement` its host)
    over the hierarchical episodes a training config's generated workload describes, one
    per seed: the mode's production scale (10,000 jobs and more, nothing truncated) from
    the command line. Each decision is made inside simrs."""
    import simrs
    from app.training.config import HOST_RULES, JOB_RULES, TrainConfig

    pair = f"{policy}+{placement}"
    job_rules = JOB_RULES + simrs.CLAIRVOYANT_PRIORITIES
    if policy not in job_rules or placement not in HOST_RULES:
        raise ConfigError(f"unknown pair {pair!r}; choose a job rule of "
                          f"{', '.join(job_rules)} and a placement of {', '.join(HOST_RULES)}")
    if metric not in METRICS:
        raise ConfigError(f"unknown metric {metric!r}; choose {', '.join(METRICS)}")
    path = Path(config_path)
    if not path.is_file():
        raise NotFoundError(f"workload config not found: {path}")
    cfg = TrainConfig.from_file(path)
    if cfg.trace:
        raise ConfigError(f"{path} replays a trace; pass it with --trace instead")
    windows, details = [], []
    for seed in seeds or list(cfg.eval_seeds):
        env = simrs.Env("hierarchical", cfg.workload(), seed)
        while not env.done:
            env.step(env.heuristic_action(pair))
        m = env.metrics()
        details.append(m)
        value = m["mean_bounded_slowdown"] if metric == "bsld" else m["utilization"]
        windows.append({"seed": seed, "start": 0, "length": int(m["jobs"]), "value": value,
                        "mean_wait_s": m["mean_wait_s"]})
    mean = {k: statistics.fmean(d[k] for d in details) for k in details[0]}
    return ReplayResult(str(path), pair, "none", "hierarchical", metric, windows,
                        statistics.fmean(w["value"] for w in windows), mean)
