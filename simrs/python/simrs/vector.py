"""Batched environments: N simulators stepped by one native call (rayon across cores, the GIL
released), writing straight into preallocated NumPy buffers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv

from simrs._simrs import Trace
from simrs._simrs import VecEnv as _NativeVecEnv


@dataclass(frozen=True)
class FinishedEpisode:
    env_index: int
    episode_return: float
    length: int
    metrics: dict[str, float]


class BatchEnv:
    """The fast path for trainers: ``step`` returns views into buffers that the next call
    overwrites (copy what you keep) and the episodes that ended, already reset."""

    def __init__(self, mode: str, num_envs: int = 1, config: dict[str, Any] | None = None,
                 seed: int = 0, **kw: Any) -> None:
        self._sim = _NativeVecEnv(mode, num_envs, config, seed, **kw)
        self.mode = mode
        self.num_envs = self._sim.num_envs
        self.obs_dim = self._sim.obs_dim
        self.action_dim = self._sim.action_dim
        self.obs = np.zeros((self.num_envs, self.obs_dim), dtype=np.float32)
        self.masks = np.zeros((self.num_envs, self.action_dim), dtype=np.int8)
        self.rewards = np.zeros(self.num_envs, dtype=np.float32)
        self.dones = np.zeros(self.num_envs, dtype=np.uint8)
        self._columns = list(_NativeVecEnv.episode_columns)
        self.episodes = np.zeros((self.num_envs, len(self._columns)), dtype=np.float64)
        # The simulator writes into these arrays directly, from then on.
        self._sim.bind(self.obs, self.masks, self.rewards, self.dones, self.episodes)
        self._sim.reset(seed)

    def reset(self, seed: int) -> tuple[np.ndarray, np.ndarray]:
        self._sim.reset(seed)
        return self.obs, self.masks

    def _finished(self, i: int) -> FinishedEpisode:
        row = dict(zip(self._columns, self.episodes[i].tolist(), strict=True))
        ret, length = row.pop("return"), int(row.pop("length"))
        return FinishedEpisode(i, ret, length, row)

    def step(self, actions: np.ndarray) -> tuple[
            np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[FinishedEpisode]]:
        ended = self._sim.step(np.ascontiguousarray(actions, dtype=np.int64))
        finished = [self._finished(i) for i in ended]
        return self.obs, self.masks, self.rewards, self.dones.view(bool), finished


class ClusterVectorEnv(VectorEnv):
    """A Gymnasium VectorEnv whose environments step inside Rust.

    Autoreset is SAME_STEP: an environment whose episode ends is reset within that step, so
    the returned observation is the next episode's first; ``infos["final_info"]`` holds the
    finished episode's metrics (and ``infos["_final_info"]`` marks which). The terminal
    observation is not returned: at the end of an episode nothing is left to schedule.
    """

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, mode: str, num_envs: int = 1, config: dict[str, Any] | None = None,
                 seed: int = 0, *, trace: Trace | None = None, **kw: Any) -> None:
        self._batch = BatchEnv(mode, num_envs, config, seed, trace=trace, **kw)
        self.num_envs = self._batch.num_envs
        self.single_observation_space = spaces.Box(0.0, 1.0, (self._batch.obs_dim,), np.float32)
        self.single_action_space = spaces.Discrete(self._batch.action_dim)
        self.observation_space = spaces.Box(0.0, 1.0, (self.num_envs, self._batch.obs_dim),
                                            np.float32)
        self.action_space = spaces.MultiDiscrete(np.full(self.num_envs, self._batch.action_dim))
        self._seed = seed

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        if seed is not None:
            self._seed = seed
        obs, masks = self._batch.reset(self._seed)
        return obs.copy(), {"action_mask": masks.copy()}

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                                 dict[str, Any]]:
        obs, masks, rewards, dones, finished = self._batch.step(actions)
        infos: dict[str, Any] = {"action_mask": masks.copy()}
        if finished:
            marks = np.zeros(self.num_envs, dtype=bool)
            final: list[dict[str, Any] | None] = [None] * self.num_envs
            for ep in finished:
                marks[ep.env_index] = True
                final[ep.env_index] = {"episode": {"r": ep.episode_return, "l": ep.length},
                                       "metrics": ep.metrics}
            infos["final_info"], infos["_final_info"] = np.array(final, dtype=object), marks
        return (obs.copy(), rewards.astype(np.float64), dones.copy(),
                np.zeros(self.num_envs, dtype=bool), infos)
