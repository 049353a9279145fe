"""`oppen bench infer`: single-decision latency and batched decisions per second, 64 hosts,
through the inference path (simrs's fused forward pass for place policies), against the
PyTorch module deciding the same observations in the same run."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from app.core.errors import ConfigError
from app.training.config import TrainConfig
from app.training.inference import LoadedPolicy
from app.training.policy import MaskedPolicy, PlacePolicy

HOSTS = 64
BATCH = 4096
SINGLES = 2000

DecideBatch = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _observations(n: int) -> tuple[np.ndarray, np.ndarray]:
    import simrs

    batch = simrs.BatchEnv("place", n, {"num_hosts": HOSTS}, 0)
    obs, masks = batch.reset(0)
    return obs.copy(), masks.copy()


def _pytorch(policy: MaskedPolicy) -> DecideBatch:
    """The module itself: what inference cost before the fused path."""
    def decide(obs: np.ndarray, masks: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            o, m = torch.from_numpy(obs), torch.from_numpy(masks.astype(bool))
            return policy.logits(o, m).argmax(dim=-1).numpy()

    return decide


def _singles_us(decide: Callable[[np.ndarray, np.ndarray], Any], obs: np.ndarray,
                masks: np.ndarray) -> list[float]:
    for i in range(50):  # warm-up
        decide(obs[i], masks[i])
    times = []
    for i in range(SINGLES):
        start = time.perf_counter()
        decide(obs[i % BATCH], masks[i % BATCH])
        times.append((time.perf_counter() - start) * 1e6)
    return times


def _batched_per_s(decide: DecideBatch, obs: np.ndarray, masks: np.ndarray,
                   repeats: int) -> list[float]:
    decide(obs, masks)  # warm-up
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        decide(obs, masks)
        rates.append(BATCH / (time.perf_counter() - start))
    return rates


def run(checkpoint_path: str | None = None, repeats: int = 5) -> dict[str, Any]:
    if checkpoint_path:
        loaded = LoadedPolicy.from_checkpoint(checkpoint_path)
        if loaded.config.mode != "place":
            raise ConfigError(f"bench infer measures place policies; {checkpoint_path} is a "
                              f"{loaded.config.mode} checkpoint")
    else:
        torch.manual_seed(0)
        cfg = TrainConfig(num_hosts=HOSTS)
        loaded = LoadedPolicy(PlacePolicy(cfg.hidden).eval(), cfg)
    obs, masks = _observations(BATCH)
    # The inference path first: PyTorch's worker threads keep spinning for a while after
    # its operations and would take a core from the fused path's threads.
    singles = _singles_us(loaded.decide, obs, masks)
    batched = _batched_per_s(loaded.decide_batch, obs, masks, repeats)
    baseline = _pytorch(loaded.policy)
    base_singles = _singles_us(lambda o, m: baseline(o[None], m[None]), obs, masks)
    base_batched = _batched_per_s(baseline, obs, masks, repeats)
    single, base_single = statistics.median(singles), statistics.median(base_singles)
    rate, base_rate = statistics.median(batched), statistics.median(base_batched)
    return {"hosts": HOSTS, "batch_size": BATCH,
            "path": "fused" if loaded.fast is not None else "pytorch",
            "single_decision_us": single,
            "single_decision_p99_us": float(np.percentile(singles, 99)),
            "batched_decisions_per_s": rate,
            "pytorch": {"single_decision_us": base_single, "batched_decisions_per_s": base_rate},
            "single_speedup": base_single / single, "batched_speedup": rate / base_rate,
            "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count(),
            "checkpoint": checkpoint_path}
