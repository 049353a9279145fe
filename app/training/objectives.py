"""What a run can be judged by: the evaluation metrics a sweep may optimise, their natural
direction, and how a trial's trainer computes one and hands it to its study."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

# Evaluation metric -> the direction that is better. "versus_baseline" is the run's headline
# metric (mean wait, or bounded slowdown under RLScheduler's protocol) over the best
# heuristic's on the same episodes: below 1 beats every heuristic.
OBJECTIVES: dict[str, str] = {
    "mean_wait_s": "minimize",
    "mean_bounded_slowdown": "minimize",
    "p95_bounded_slowdown": "minimize",
    "mean_turnaround_s": "minimize",
    "makespan_s": "minimize",
    "utilization": "maximize",
    "versus_baseline": "minimize",
}


class TrialHooks(Protocol):
    """A sweep's trial, as its trainer sees it (app.sweeps.trial implements it)."""

    objective: str
    direction: str

    def report(self, value: float, step: int) -> bool:
        """Tells the study the objective after ``step`` steps; True when its pruner says to
        stop this trial now."""
        ...

    def finish(self, value: float) -> None:
        """Records the trial's final objective (the dispatcher tells the study once the job
        has ended well)."""
        ...


def objective_of(cfg: Any, table: dict[str, dict[str, float]], objective: str,
                 policy_row: str = "ppo") -> float:
    """The objective from an evaluation table (the policy's row and the heuristics')."""
    from app.training.evaluate import headline_metric

    row = table[policy_row]
    if objective != "versus_baseline":
        return float(row[objective])
    metric = headline_metric(cfg)
    best = min(v[metric] for name, v in table.items() if name != policy_row)
    return float(row[metric] / max(best, 1e-9))


def objective_evaluator(cfg: Any, objective: str) -> Callable[[Any], float]:
    """Evaluates a policy on the run's evaluation seeds and returns the objective, signed so
    that lower is better (what early stopping compares). The heuristics' rows, needed only
    for versus_baseline, are computed once per run: they do not change with the policy."""
    from app.training.evaluate import baselines, evaluate_config, policy_chooser
    from app.training.ppo import resolve_device

    device, sign = resolve_device(cfg.device), -1.0 if OBJECTIVES[objective] == "maximize" \
        else 1.0
    heuristics: dict[str, dict[str, float]] = {}

    def run(policy: Any) -> float:
        if objective == "versus_baseline" and not heuristics:
            heuristics.update(evaluate_config(cfg, baselines(cfg.mode), cfg.eval_seeds))
        table = evaluate_config(cfg, {"ppo": policy_chooser(policy, device)}, cfg.eval_seeds)
        return sign * objective_of(cfg, {**heuristics, **table}, objective)

    return run


def signed(objective: str, value: float) -> float:
    """A raw objective turned lower-is-better (or back: the map is its own inverse)."""
    return -value if OBJECTIVES[objective] == "maximize" else value
