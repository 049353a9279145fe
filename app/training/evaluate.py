"""Evaluation on fixed workload seeds: the trained policy against the placement heuristics."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from app.training.policy import PlacePolicy

Chooser = Callable[[Any, np.ndarray, np.ndarray], int]


def run_episode(workload: dict[str, Any], seed: int, choose: Chooser,
                reward: str = "wait") -> dict[str, float]:
    import simrs

    env = simrs.ClusterPlaceEnv(workload, seed=seed, reward=reward)
    obs, info = env.reset(seed=seed)
    done, total = False, 0.0
    while not done:
        action = choose(env, obs, info["action_mask"])
        obs, r, done, _, info = env.step(action)
        total += r
    return {"return": total, **env.metrics()}


def policy_chooser(policy: PlacePolicy, device: torch.device) -> Chooser:
    def choose(_env: Any, obs: np.ndarray, mask: np.ndarray) -> int:
        o = torch.as_tensor(obs, device=device).unsqueeze(0)
        m = torch.as_tensor(mask, device=device).bool().unsqueeze(0)
        return int(policy.greedy(o, m).item())

    return choose


def heuristic_chooser(name: str) -> Chooser:
    def choose(env: Any, _obs: np.ndarray, _mask: np.ndarray) -> int:
        return int(env.heuristic_action(name))

    return choose


def evaluate(workload: dict[str, Any], seeds: Sequence[int], choosers: dict[str, Chooser],
             reward: str = "wait") -> dict[str, dict[str, float]]:
    """Mean metrics per chooser over the same seeds."""
    table: dict[str, dict[str, float]] = {}
    for name, choose in choosers.items():
        rows = [run_episode(workload, s, choose, reward) for s in seeds]
        table[name] = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
    return table
