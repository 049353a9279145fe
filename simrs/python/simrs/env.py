"""Gymnasium environments over the native simulator, one class per decision mode.

Observation layouts and masks are documented in docs/simulator.md; ``info["action_mask"]``
(int8, 1 = allowed) comes with every observation and ``action_masks()`` returns it as bool.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from simrs._simrs import ConfigError, Env, Trace


class ClusterEnv(gym.Env[np.ndarray, np.int64]):
    """One simrs environment of the given mode (``place``, ``pick`` or ``hierarchical``)."""

    metadata = {"render_modes": []}

    def __init__(
        self,
        mode: str,
        config: dict[str, Any] | None = None,
        seed: int = 0,
        *,
        reward: str = "wait",
        window: int = 128,
        backfill: str = "none",
        trace: Trace | None = None,
        episode_length: int = 256,
        protocol: str = "simrs",
        invalid_action: str = "raise",
    ) -> None:
        if invalid_action not in ("raise", "remap"):
            raise ConfigError(f"invalid_action must be 'raise' or 'remap', got {invalid_action!r}")
        self.invalid_action = invalid_action
        self._sim = Env(mode, config, seed, reward=reward, window=window, backfill=backfill,
                        trace=trace, episode_length=episode_length, protocol=protocol)
        self._seed = seed
        self.mode = mode
        self.num_hosts = self._sim.num_hosts
        self.observation_space = spaces.Box(0.0, 1.0, (self._sim.obs_dim,), np.float32)
        self.action_space = spaces.Discrete(self._sim.action_dim)
        self._obs = np.zeros(self._sim.obs_dim, dtype=np.float32)
        self._mask = np.zeros(self._sim.action_dim, dtype=np.int8)

    def _observe(self) -> tuple[np.ndarray, dict[str, Any]]:
        self._sim.observe_into(self._obs)
        self._sim.mask_into(self._mask)
        return self._obs.copy(), {"action_mask": self._mask.copy()}

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if options and "start" in options:
            # protocol="rlscheduler": the window of the trace starting at this job.
            self._sim.reset_window(int(options["start"]))
            return self._observe()
        # An explicit seed picks the workload; otherwise each episode takes the next seed.
        self._seed = seed if seed is not None else self._seed + 1
        self._sim.reset(self._seed)
        return self._observe()

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        action, remapped = int(action), False
        if self.invalid_action == "remap":
            # Generic tools (env checkers, unmasked agents) sample any action: map a masked
            # one to the first allowed action instead of raising, and say so in info.
            self._sim.mask_into(self._mask)
            if not (0 <= action < len(self._mask) and self._mask[action]):
                allowed = np.flatnonzero(self._mask)
                if len(allowed):
                    action, remapped = int(allowed[0]), True
        reward, done = self._sim.step(action)
        obs, info = self._observe()
        info["invalid_action"] = remapped
        if done:
            info["episode_metrics"] = self._sim.metrics()
        return obs, float(reward), bool(done), False, info

    def action_masks(self) -> np.ndarray:
        """The current mask as bool (the name maskable-PPO libraries look for)."""
        self._sim.mask_into(self._mask)
        return self._mask.astype(bool)

    def heuristic_action(self, name: str) -> int | None:
        """A placement rule's host (place mode), a priority rule's slot (pick mode), or a
        pair's action, e.g. "sjf+best_fit" (hierarchical mode: the job, then its host)."""
        return self._sim.heuristic_action(name)

    def metrics(self) -> dict[str, float]:
        return self._sim.metrics()

    @property
    def phase(self) -> int:
        """Hierarchical mode: 0 while choosing a job, 1 while choosing its host."""
        return self._sim.phase


class ClusterPlaceEnv(ClusterEnv):
    """Choose the host for the job at the head of the queue."""

    def __init__(self, config: dict[str, Any] | None = None, seed: int = 0, **kw: Any) -> None:
        super().__init__("place", config, seed, **kw)


class ClusterPickEnv(ClusterEnv):
    """Choose which of the first ``window`` queued jobs starts next (first-fit placement)."""

    def __init__(self, config: dict[str, Any] | None = None, seed: int = 0, **kw: Any) -> None:
        super().__init__("pick", config, seed, **kw)


class ClusterHierarchicalEnv(ClusterEnv):
    """Choose a job from the whole queue, then a host for it."""

    def __init__(self, config: dict[str, Any] | None = None, seed: int = 0, **kw: Any) -> None:
        super().__init__("hierarchical", config, seed, **kw)
