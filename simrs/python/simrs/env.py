"""Gymnasium single-environment wrapper over the native `place`-mode simulator."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from simrs._simrs import PlaceEnv

HOST_FEATURES = 4
JOB_FEATURES = 2


class ClusterPlaceEnv(gym.Env[np.ndarray, np.int64]):
    """Choose the host for the job at the head of the queue.

    Observation: float32 of length ``num_hosts * 4 + 2`` (per host: core utilisation, memory
    utilisation, cores and memory relative to the largest host; then the job's cores and
    memory relative to the largest host). ``info["action_mask"]`` is an int8 array with 1 for
    each host the job fits on. Reward: minus the job-hours spent waiting since the last step.
    """

    metadata = {"render_modes": []}

    def __init__(self, config: dict[str, Any] | None = None, seed: int = 0) -> None:
        self._sim = PlaceEnv(config, seed)
        self._seed = seed
        self.num_hosts = self._sim.num_hosts
        self.observation_space = spaces.Box(0.0, 1.0, (self._sim.obs_dim,), np.float32)
        self.action_space = spaces.Discrete(self.num_hosts)
        self._obs = np.zeros(self._sim.obs_dim, dtype=np.float32)
        self._mask = np.zeros(self.num_hosts, dtype=np.int8)

    def _observe(self) -> tuple[np.ndarray, dict[str, Any]]:
        self._sim.observe_into(self._obs)
        self._sim.mask_into(self._mask)
        return self._obs.copy(), {"action_mask": self._mask.copy()}

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if seed is not None:
            self._seed = seed
        else:
            self._seed += 1  # a fresh, still reproducible workload each episode
        self._sim.reset(self._seed)
        return self._observe()

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        reward, done = self._sim.step(int(action))
        obs, info = self._observe()
        if done:
            info["episode_metrics"] = self._sim.metrics()
        return obs, float(reward), bool(done), False, info

    def action_masks(self) -> np.ndarray:
        """The current mask (the name maskable-PPO libraries look for)."""
        self._sim.mask_into(self._mask)
        return self._mask.astype(bool)

    def heuristic_action(self, name: str) -> int | None:
        return self._sim.heuristic_action(name)

    def metrics(self) -> dict[str, float]:
        return self._sim.metrics()
