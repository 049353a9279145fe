"""Evaluation on fixed workload seeds: the trained policy against the placement heuristics."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from app.training.config import HOST_RULES, JOB_RULES
from app.training.policy import MaskedPolicy

Chooser = Callable[[Any, np.ndarray, np.ndarray], int]
# Told after each policy or heuristic is done: its name, how many are done, of how many.
Progress = Callable[[str, int, int], None]


def run_episode(workload: dict[str, Any] | None, seed: int, choose: Chooser,
                reward: str = "wait", mode: str = "place",
                options: dict[str, Any] | None = None) -> dict[str, float]:
    import simrs

    opts = {"reward": reward, **(options or {})}
    if isinstance(choose, HeuristicChooser):
        return _heuristic_episode(simrs.Env(mode, workload, seed, **opts), seed, choose.name)
    env = simrs.ClusterEnv(mode, workload, seed, **opts)
    obs, info = env.reset(seed=seed)
    done, total = False, 0.0
    while not done:
        action = choose(env, obs, info["action_mask"])
        obs, r, done, _, info = env.step(action)
        total += r
    return {"return": total, **env.metrics()}


def policy_chooser(policy: MaskedPolicy, device: torch.device) -> Chooser:
    def choose(_env: Any, obs: np.ndarray, mask: np.ndarray) -> int:
        o = torch.as_tensor(obs, device=device).unsqueeze(0)
        m = torch.as_tensor(mask, device=device).bool().unsqueeze(0)
        return int(policy.greedy(o, m).item())

    return choose


class HeuristicChooser:
    """A heuristic's decisions, each made inside simrs. As a Chooser it takes any
    environment; `run_episode` runs its episodes without observations, which it never reads
    (a 10,000-job hierarchical episode builds 20,000 of them, 80,000 values each)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, env: Any, _obs: np.ndarray, _mask: np.ndarray) -> int:
        return int(env.heuristic_action(self.name))


def heuristic_chooser(name: str) -> Chooser:
    return HeuristicChooser(name)


def _heuristic_episode(env: Any, seed: int, name: str) -> dict[str, float]:
    """`run_episode`'s loop on a bare simrs.Env: the same decisions, rewards and metrics."""
    env.reset(seed)
    done, total = False, 0.0
    while not done:
        action = env.heuristic_action(name)
        if action is None:
            raise RuntimeError(f"{name} found no action in a live episode")
        reward, done = env.step(action)
        total += reward
    return {"return": total, **env.metrics()}


# The job-shop seed's workaround for a policy that cannot see the whole queue: only this many
# queued jobs shown at a time.
BATCH_WINDOW = 170
EMPTY_JOB_ROW = np.array([0, 1, 1, 1, 1, 1, 1, 0], dtype=np.float32)


def batched(choose: Chooser, window: int = BATCH_WINDOW) -> Chooser:
    """A hierarchical chooser shown only `window` queued jobs at a time, in arrival (FCFS
    priority) order: in the job phase, the block of `window` queue positions holding the
    first job that fits is all it sees (the other jobs' rows read as empty slots and are
    masked); the host phase is unchanged."""
    def choose_batched(env: Any, obs: np.ndarray, mask: np.ndarray) -> int:
        if obs[0] != 0:  # the host phase
            return choose(env, obs, mask)
        # [phase, the chosen job's 8, 4 per host, 8 per queue slot]: the job rows are the tail.
        jobs = (len(obs) - 9 - 4 * env.num_hosts) // 8
        first = int(np.flatnonzero(mask)[0])
        lo, hi = first - first % window, first - first % window + window
        seen_mask = np.zeros_like(mask)
        seen_mask[lo:hi] = mask[lo:hi]
        seen = obs.copy()
        rows = seen[len(obs) - 8 * jobs:].reshape(jobs, 8)
        rows[:lo] = EMPTY_JOB_ROW
        rows[hi:] = EMPTY_JOB_ROW
        return choose(env, seen, seen_mask)

    return choose_batched


def baselines(mode: str) -> dict[str, Chooser]:
    """The heuristics a trained policy is set against, per mode."""
    if mode == "place":
        # The two (first-fit is the LSF seed's), and best-fit by memory, which is
        # what packs a memory-bound cluster.
        return {b: heuristic_chooser(b) for b in ("first_fit", "best_fit", "best_fit_mem")}
    if mode == "pick":
        return {b: heuristic_chooser(b) for b in ("fcfs", "sjf", "f1")}
    return {f"{job}_{host}": heuristic_chooser(f"{job}+{host}")
            for job in JOB_RULES for host in HOST_RULES}


def policy_choosers(policy: MaskedPolicy, device: torch.device,
                    mode: str) -> dict[str, Chooser]:
    """A trained policy's rows of an evaluation: itself, and in the hierarchical mode also
    under the batch workaround (`ppo_batch170`), the baseline a whole-queue policy must beat."""
    rows = {"ppo": policy_chooser(policy, device)}
    if mode == "hierarchical":
        rows[f"ppo_batch{BATCH_WINDOW}"] = batched(rows["ppo"])
    return rows


def evaluate(workload: dict[str, Any] | None, seeds: Sequence[int],
             choosers: dict[str, Chooser], reward: str = "wait", mode: str = "place",
             options: dict[str, Any] | None = None,
             on_progress: Progress | None = None) -> dict[str, dict[str, float]]:
    """Mean metrics per chooser over the same seeds."""
    table: dict[str, dict[str, float]] = {}
    for done, (name, choose) in enumerate(choosers.items(), 1):
        rows = [run_episode(workload, s, choose, reward, mode, options) for s in seeds]
        table[name] = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
        if on_progress is not None:
            on_progress(name, done, len(choosers))
    return table


def headline_metric(cfg: Any) -> str:
    """The figure a run is judged by (lower is better): bounded slowdown under RLScheduler's
    protocol, as in its paper; mean wait otherwise."""
    return "mean_bounded_slowdown" if cfg.protocol == "rlscheduler" else "mean_wait_s"


def evaluate_config(cfg: Any, choosers: dict[str, Chooser],
                    seeds: Sequence[int] | None = None,
                    on_progress: Progress | None = None) -> dict[str, dict[str, float]]:
    """`evaluate` on the environment a training config describes (TrainConfig); under
    RLScheduler's protocol, its windows of the trace instead of seeded episodes."""
    if cfg.protocol == "rlscheduler":
        from app.training.rlscheduler_eval import evaluate_protocol

        return evaluate_protocol(cfg, choosers, seeds, on_progress)
    options = cfg.env_options()
    reward = options.pop("reward")
    return evaluate(cfg.env_config(), seeds or cfg.eval_seeds, choosers, reward, cfg.mode,
                    options, on_progress)
