"""`oppen bench train`: end-to-end PPO steps per second on simrs's batch env, against the same
PPO driven through Gymnasium's SyncVectorEnv (a Python loop over single environments), and
against the same run with the policy's per-host layers in PyTorch, all measured in the same
run."""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from app.training import host_layers
from app.training.config import TrainConfig
from app.training.ppo import Trainer, resolve_device

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


class TimedEnvs:
    """Any batch env, with the wall time spent inside its reset and step counted: how much
    of a training run the environment is, which bounds what a faster one can gain."""

    def __init__(self, envs: Any) -> None:
        self.envs = envs
        self.obs_dim, self.action_dim = envs.obs_dim, envs.action_dim
        self.seconds = 0.0

    def reset(self, seed: int) -> Any:
        start = time.perf_counter()
        try:
            return self.envs.reset(seed)
        finally:
            self.seconds += time.perf_counter() - start

    def step(self, actions: np.ndarray) -> Any:
        start = time.perf_counter()
        try:
            return self.envs.step(actions)
        finally:
            self.seconds += time.perf_counter() - start


def _sps(cfg: TrainConfig, envs: Any) -> tuple[float, float]:
    """Steps per second of a whole run, and the share of its time spent in the env."""
    timed = TimedEnvs(envs)
    trainer = Trainer(cfg, envs=timed)
    start = time.perf_counter()
    result = trainer.run()
    elapsed = time.perf_counter() - start
    return result.global_step / elapsed, timed.seconds / elapsed


def run(repeats: int = 3, iterations: int = 3) -> dict[str, Any]:
    import simrs

    # The small-job workload every earlier figure used (the defaults until 2026-12-06).
    base = TrainConfig(num_hosts=HOSTS, episode_length=200, max_jobs_per_step=50,
                       mean_interarrival_s=60.0, job_cores=(1, 4), job_mem_mb=(512, 4096),
                       num_envs=128, rollout_steps=128)
    cfg = TrainConfig.from_dict({**base.to_dict(),
                                 "total_timesteps": base.batch_size * iterations})
    fused = host_layers.use_fused(cfg.host_layers, cfg.mode, cfg.hidden,
                                  resolve_device(cfg.device))
    # The same run with the per-host layers in PyTorch: what the fused pass gains.
    torch_cfg = TrainConfig.from_dict({**cfg.to_dict(), "host_layers": "torch"})
    rust, loop, ratios, rust_env, loop_env, ceilings = [], [], [], [], [], []
    torch_layers, fused_gains = [], []
    for _ in range(repeats):  # paired: all measured back to back
        sps, env_share = _sps(cfg, simrs.BatchEnv("place", cfg.num_envs, cfg.workload(),
                                                  cfg.seed))
        rust.append(sps)
        rust_env.append(env_share)
        torch_layers.append(_sps(torch_cfg, simrs.BatchEnv("place", cfg.num_envs,
                                                            cfg.workload(), cfg.seed))[0])
        fused_gains.append(rust[-1] / torch_layers[-1])
        sps, env_share = _sps(cfg, SyncLoopEnv(cfg))
        loop.append(sps)
        loop_env.append(env_share)
        ratios.append(rust[-1] / loop[-1])
        # Env seconds per step on each side: the ratio a free network would give.
        ceilings.append((loop_env[-1] / loop[-1]) / (rust_env[-1] / rust[-1]))
    return {"hosts": HOSTS, "num_envs": cfg.num_envs, "rollout_steps": cfg.rollout_steps,
            "hidden": cfg.hidden, "steps_per_sample": cfg.total_timesteps,
            "train_steps_per_s": statistics.median(rust),
            "sync_vector_env_steps_per_s": statistics.median(loop),
            "ratio": statistics.median(ratios),
            "host_layers": "fused" if fused else "torch",
            # How PyTorch's idle OpenMP threads wait (PASSIVE unless a person set it otherwise:
            # app/cli/common.sleep_idle_openmp_threads).
            "openmp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "unset"),
            "torch_layers_steps_per_s": statistics.median(torch_layers),
            "host_layers_speedup": statistics.median(fused_gains),
            "env_share": {"simrs": statistics.median(rust_env),
                          "sync_vector_env": statistics.median(loop_env)},
            "env_only_ratio": statistics.median(ceilings),
            "samples": {"simrs": rust, "sync_vector_env": loop, "ratio": ratios,
                        "torch_layers": torch_layers},
            "cpus": os.cpu_count()}
