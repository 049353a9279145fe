"""The batched `place` environment: N simulators stepped by one native call."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from simrs._simrs import VecPlaceEnv


@dataclass(frozen=True)
class FinishedEpisode:
    env_index: int
    episode_return: float
    length: int
    metrics: dict[str, float]


class PlaceVectorEnv:
    """N `place` environments with automatic reset and preallocated NumPy buffers.

    ``step`` returns views into buffers that the next call overwrites; copy what you keep.
    """

    def __init__(self, config: dict[str, Any] | None = None, num_envs: int = 1, seed: int = 0):
        self._sim = VecPlaceEnv(config, num_envs, seed)
        self.num_envs = self._sim.num_envs
        self.num_hosts = self._sim.num_hosts
        self.obs_dim = self._sim.obs_dim
        self._obs = np.zeros((self.num_envs, self.obs_dim), dtype=np.float32)
        self._mask = np.zeros((self.num_envs, self.num_hosts), dtype=np.int8)
        self._rewards = np.zeros(self.num_envs, dtype=np.float32)
        self._dones = np.zeros(self.num_envs, dtype=np.uint8)

    def reset(self, seed: int) -> tuple[np.ndarray, np.ndarray]:
        self._sim.reset(seed)
        return self._observe()

    def _observe(self) -> tuple[np.ndarray, np.ndarray]:
        self._sim.observe_into(self._obs)
        self._sim.mask_into(self._mask)
        return self._obs, self._mask

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[FinishedEpisode]]:
        acts = np.ascontiguousarray(actions, dtype=np.int64)
        ended = self._sim.step_into(acts, self._rewards, self._dones)
        obs, mask = self._observe()
        finished = [
            FinishedEpisode(i, e["return"], e["length"], e["metrics"]) for i, e in ended
        ]
        return obs, mask, self._rewards, self._dones.astype(bool), finished
