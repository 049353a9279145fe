"""`oppen bench infer`: single-decision latency and batched decisions per second, 64 hosts."""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

import numpy as np
import torch

from app.training.config import TrainConfig
from app.training.inference import LoadedPolicy
from app.training.policy import PlacePolicy

HOSTS = 64
BATCH = 4096


def _observations(n: int) -> tuple[np.ndarray, np.ndarray]:
    import simrs

    batch = simrs.BatchEnv("place", n, {"num_hosts": HOSTS}, 0)
    obs, masks = batch.reset(0)
    return obs.copy(), masks.copy()


def run(checkpoint_path: str | None = None, repeats: int = 5) -> dict[str, Any]:
    if checkpoint_path:
        loaded = LoadedPolicy.from_checkpoint(checkpoint_path)
    else:
        torch.manual_seed(0)
        cfg = TrainConfig(num_hosts=HOSTS)
        loaded = LoadedPolicy(PlacePolicy(cfg.hidden).eval(), cfg)
    obs, masks = _observations(BATCH)
    for _ in range(50):  # warm-up
        loaded.decide(obs[0], masks[0])
    singles = []
    for i in range(2000):
        t = time.perf_counter()
        loaded.decide(obs[i % BATCH], masks[i % BATCH])
        singles.append((time.perf_counter() - t) * 1e6)
    batched = []
    for _ in range(repeats):
        t = time.perf_counter()
        loaded.decide_batch(obs, masks)
        batched.append(BATCH / (time.perf_counter() - t))
    return {"hosts": HOSTS, "batch_size": BATCH,
            "single_decision_us": statistics.median(singles),
            "single_decision_p99_us": float(np.percentile(singles, 99)),
            "batched_decisions_per_s": statistics.median(batched),
            "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count(),
            "checkpoint": checkpoint_path}
