"""`oppen bench train --mode pick|hierarchical`: end-to-end PPO steps per second with the
per-entity layers through simrs's fused pass against the same run with PyTorch's layers,
paired and measured back to back in the same process.

`pick` runs the shipped recipe's network and batch shape (pretrained/pick-lublin256.toml,
lublin_256 under RLScheduler's protocol; no imitation or evaluation, which are not the
update's speed). `hierarchical` runs the shipped hierarchical recipe's network (hidden 32,
the host alignment term) with pick's batch shape on a synthetic 64-host workload
(`HIERARCHICAL`): the recipe's own 10,000-job episodes on 160 hosts would make each
measured update minutes long.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Any

from app.core.errors import ConfigError
from app.training import host_layers
from app.training.config import TrainConfig
from app.training.ppo import Trainer, resolve_device
from app.training.shipped import pretrained_dir

PICK_RECIPE = "pick-lublin256.toml"
HIERARCHICAL: dict[str, Any] = {
    "mode": "hierarchical", "num_hosts": 64, "window": 128, "hidden": 32, "num_envs": 32,
    "rollout_steps": 256, "num_minibatches": 8, "update_epochs": 8, "episode_length": 1000,
    "max_jobs_per_step": 50, "mean_interarrival_s": 5.0, "host_alignment": True,
}


def bench_config(mode: str, iterations: int,
                 overrides: dict[str, Any] | None = None) -> TrainConfig:
    """The measured run's config: `iterations` PPO updates, nothing else in the loop
    (`overrides`: other options, for a smaller run)."""
    if mode == "pick":
        folder = pretrained_dir()
        if folder is None or not (folder / PICK_RECIPE).is_file():
            raise ConfigError(f"the shipped pick recipe {PICK_RECIPE} was not found "
                              "(set OPPEN_PRETRAINED_DIR to the checkout's pretrained/)")
        data = TrainConfig.from_file(folder / PICK_RECIPE).to_dict()
        # The recipe's trace path is relative to the repository root.
        trace = Path(data["trace"])
        if not trace.is_absolute():
            data["trace"] = str((folder.parent / trace).resolve())
        data.update(imitate="", eval_every=0)
    elif mode == "hierarchical":
        data = dict(HIERARCHICAL)
    else:
        raise ConfigError(f"--mode: choose pick or hierarchical, got {mode!r}")
    cfg = TrainConfig.from_dict({**data, **(overrides or {})})
    return TrainConfig.from_dict({**cfg.to_dict(), "total_timesteps": cfg.batch_size * iterations})


def _sps(cfg: TrainConfig) -> float:
    trainer = Trainer(cfg)
    start = time.perf_counter()
    result = trainer.run()
    return result.global_step / (time.perf_counter() - start)


def run(mode: str, repeats: int = 3, iterations: int = 2,
        overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    cfg = bench_config(mode, iterations, overrides)
    fused_cfg = TrainConfig.from_dict({**cfg.to_dict(), "host_layers": "fused"})
    torch_cfg = TrainConfig.from_dict({**cfg.to_dict(), "host_layers": "torch"})
    fused, torch_layers, gains = [], [], []
    for _ in range(repeats):  # paired: each fused run beside a PyTorch one
        fused.append(_sps(fused_cfg))
        torch_layers.append(_sps(torch_cfg))
        gains.append(fused[-1] / torch_layers[-1])
    auto = host_layers.use_fused("auto", mode, cfg.hidden, resolve_device(cfg.device))
    return {"mode": mode, "hidden": cfg.hidden, "num_envs": cfg.num_envs,
            "rollout_steps": cfg.rollout_steps, "update_epochs": cfg.update_epochs,
            "num_minibatches": cfg.num_minibatches, "steps_per_sample": cfg.total_timesteps,
            "fused_steps_per_s": statistics.median(fused),
            "torch_layers_steps_per_s": statistics.median(torch_layers),
            "fused_speedup": statistics.median(gains),
            "auto_chooses": "fused" if auto else "torch",
            "samples": {"fused": fused, "torch_layers": torch_layers, "ratio": gains},
            "openmp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "unset"),
            "cpus": os.cpu_count()}
