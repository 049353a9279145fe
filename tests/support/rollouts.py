"""Observations and masks from simrs's own environments under random allowed actions, for
tests of the policies' layers and training paths."""

from __future__ import annotations

import numpy as np
import torch

import simrs
from app.training.config import TrainConfig


def random_rollout(mode: str, rows: int, seed: int, **options: object) -> tuple[torch.Tensor,
                                                                                torch.Tensor]:
    """`rows` observations and masks of `mode`'s environments under random allowed actions:
    queues of every length, and for hierarchical both phases."""
    envs = simrs.BatchEnv(mode, 16, TrainConfig(num_hosts=12).workload(), seed, **options)
    rng = np.random.default_rng(seed)
    obs, mask = envs.reset(seed)
    seen_obs, seen_mask = [], []
    while sum(len(o) for o in seen_obs) < rows:
        seen_obs.append(obs.copy())
        seen_mask.append(mask.copy())
        actions = np.array([rng.choice(np.flatnonzero(m)) for m in mask])
        obs, mask, _r, _d, _ended = envs.step(actions)
    return (torch.as_tensor(np.concatenate(seen_obs)[:rows]),
            torch.as_tensor(np.concatenate(seen_mask)[:rows]).bool())
