"""`oppen bench train`: end-to-end PPO steps per second on simrs's batch env, against the same
PPO driven through Gymnasium's SyncVectorEnv (a Python loop over single environments),
measured in the same run."""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from app.training.config import TrainConfig
from app.training.ppo import Trainer

HOSTS = 64


class SyncLoopEnv:
    """simrs.BatchEnv's interface over gymnasium.vector.SyncVectorEnv of single envs."""

    def __init__(self, cfg: TrainConfig) -> None:
        import simrs

        def make(i: int) -> Any:
            return lambda: simrs.ClusterPlaceEnv(cfg.workload(), cfg.seed + i,
                                                 reward=cfg.reward)

        self.vec = SyncVectorEnv([make(i) for i in range(cfg.num_envs)],
                                 autoreset_mode=AutoresetMode.SAME_STEP)
        single = self.vec.single_observation_space.shape
        self.obs_dim = int(single[0]) if single else 0
        self.action_dim = int(self.vec.single_action_space.n)

    def reset(self, seed: int) -> tuple[np.ndarray, np.ndarray]:
        obs, info = self.vec.reset(seed=seed)
        return obs, info["action_mask"]

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                 np.ndarray, list[Any]]:
        from simrs import FinishedEpisode

        obs, rewards, terms, _truncs, info = self.vec.step(actions)
        finished = []
        if "final_info" in info:
            final = info["final_info"]
            for i in np.flatnonzero(terms):
                metrics = final["episode_metrics"]
                row = {k: float(v[i]) for k, v in metrics.items() if not k.startswith("_")}
                finished.append(FinishedEpisode(int(i), float("nan"), 0, row))
        return obs, info["action_mask"], rewards.astype(np.float32), terms, finished


def _sps(cfg: TrainConfig, envs: Any) -> float:
    trainer = Trainer(cfg, envs=envs)
    start = time.perf_counter()
    result = trainer.run()
    return result.global_step / (time.perf_counter() - start)


def run(repeats: int = 3, iterations: int = 3) -> dict[str, Any]:
    import simrs

    base = TrainConfig(num_hosts=HOSTS, episode_length=200, max_jobs_per_step=50,
                       mean_interarrival_s=60.0, num_envs=128, rollout_steps=128)
    cfg = TrainConfig.from_dict({**base.to_dict(),
                                 "total_timesteps": base.batch_size * iterations})
    rust, loop, ratios = [], [], []
    for _ in range(repeats):  # paired: both measured back to back
        rust.append(_sps(cfg, simrs.BatchEnv("place", cfg.num_envs, cfg.workload(), cfg.seed)))
        loop.append(_sps(cfg, SyncLoopEnv(cfg)))
        ratios.append(rust[-1] / loop[-1])
    return {"hosts": HOSTS, "num_envs": cfg.num_envs, "rollout_steps": cfg.rollout_steps,
            "hidden": cfg.hidden, "steps_per_sample": cfg.total_timesteps,
            "train_steps_per_s": statistics.median(rust),
            "sync_vector_env_steps_per_s": statistics.median(loop),
            "ratio": statistics.median(ratios),
            "samples": {"simrs": rust, "sync_vector_env": loop, "ratio": ratios},
            "cpus": os.cpu_count()}
