"""`oppen bench sim`: simrs throughput against a plain-Python reference in the same run.

Figures are medians over repeats. Steps per second count environment steps (one decision
in one environment) with observations and masks written, actions chosen from the masks.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from app.bench.reference_place_env import ReferencePlaceEnv

PLACE_HOSTS = 64
NUM_ENVS = 256
PICK_WINDOW = 128


@dataclass
class SimBenchResult:
    place_steps_per_s: float
    pick_steps_per_s: float
    reference_place_steps_per_s: float
    place_vs_reference: float  # median of paired per-sample ratios
    reference_verified: bool
    easy_replay_ms: float | None
    easy_replay_jobs: int | None
    settings: dict[str, Any] = field(default_factory=dict)
    samples: dict[str, list[float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _workload(num_hosts: int) -> dict[str, Any]:
    return {"num_hosts": num_hosts}


def _vector_sps(mode: str, seconds: float, num_envs: int, num_hosts: int) -> float:
    import simrs

    batch = simrs.BatchEnv(mode, num_envs, _workload(num_hosts), 0, window=PICK_WINDOW)
    _, masks = batch.reset(0)
    for _ in range(20):  # warm-up
        _, masks, *_ = batch.step(masks.argmax(axis=1))
    steps, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(50):
            _, masks, *_ = batch.step(masks.argmax(axis=1))
        steps += 50 * num_envs
    return steps / elapsed


def _reference_envs(num_envs: int, num_hosts: int) -> list[ReferencePlaceEnv]:
    import simrs

    envs = []
    for i in range(num_envs):
        native = simrs.Env("place", _workload(num_hosts), i)
        envs.append(ReferencePlaceEnv(*native.episode()))
    return envs


def _reference_sps(seconds: float, num_envs: int, num_hosts: int) -> float:
    envs = _reference_envs(num_envs, num_hosts)
    obs = np.zeros(num_hosts * 4 + 2, dtype=np.float32)
    masks = np.zeros((num_envs, num_hosts), dtype=np.int8)
    for env, m in zip(envs, masks, strict=True):
        env.action_mask(m)
    steps, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        # Same work per step as the vector env: act on the last mask, write obs and mask.
        actions = masks.argmax(axis=1)
        for i, env in enumerate(envs):
            _, done = env.step(int(actions[i]))
            if done:
                envs[i] = env = _reference_envs(1, num_hosts)[0]
            env.observe(obs)
            env.action_mask(masks[i])
            steps += 1
    return steps / elapsed


def python_speed(seconds: float = 1.0, repeats: int = 3) -> float:
    """The plain-Python reference's steps per second with this benchmark's settings (median):
    how fast this machine runs Python today, to compare with the VM a figure was measured on
    (docs/simulator.md records it)."""
    return statistics.median(_reference_sps(seconds, NUM_ENVS, PLACE_HOSTS)
                             for _ in range(repeats))


def verify_reference(num_hosts: int = 8, seeds: range = range(3)) -> bool:
    """The reference and simrs give identical episodes under identical actions."""
    import simrs

    for seed in seeds:
        native = simrs.Env("place", {"num_hosts": num_hosts, "episode_length": 120,
                                     "max_jobs_per_step": 30, "mean_interarrival_s": 5.0},
                           seed)
        ref = ReferencePlaceEnv(*native.episode())
        dim = native.obs_dim
        a_obs, b_obs = np.zeros(dim, np.float32), np.zeros(dim, np.float32)
        a_mask, b_mask = np.zeros(num_hosts, np.int8), np.zeros(num_hosts, np.int8)
        rng = np.random.default_rng(seed)
        done = False
        while not done:
            native.observe_into(a_obs)
            native.mask_into(a_mask)
            ref.observe(b_obs)
            ref.action_mask(b_mask)
            if not (np.array_equal(a_mask, b_mask) and np.allclose(a_obs, b_obs, atol=1e-6)):
                return False
            action = int(rng.choice(np.flatnonzero(a_mask)))
            r1, done = native.step(action)
            r2, done2 = ref.step(action)
            if done != done2 or abs(r1 - r2) > 1e-9:
                return False
    return True


def _easy_replay(trace: Path, repeats: int) -> tuple[float | None, int | None, list[float]]:
    import simrs

    if not trace.is_file():
        return None, None, []
    t = simrs.load_trace(trace)
    runs = [simrs.replay_trace(t, "fcfs", "first_fit", "easy") for _ in range(repeats)]
    ms = [r["elapsed_s"] * 1000 for r in runs]
    return statistics.median(ms), int(runs[0]["jobs"]), ms


def run(seconds: float = 1.0, repeats: int = 5, trace: Path | None = None) -> SimBenchResult:
    place, pick, reference, ratios = [], [], [], []
    for _ in range(repeats):
        # Paired samples: simrs and the reference back to back, so a slow moment on a shared
        # machine hits both and the ratio of each pair stays meaningful.
        place.append(_vector_sps("place", seconds, NUM_ENVS, PLACE_HOSTS))
        reference.append(_reference_sps(seconds, NUM_ENVS, PLACE_HOSTS))
        ratios.append(place[-1] / reference[-1])
        pick.append(_vector_sps("pick", seconds, NUM_ENVS, PLACE_HOSTS))
    easy_ms, easy_jobs, easy_samples = _easy_replay(trace, repeats) if trace else (None, None, [])
    return SimBenchResult(
        place_steps_per_s=statistics.median(place),
        pick_steps_per_s=statistics.median(pick),
        reference_place_steps_per_s=statistics.median(reference),
        place_vs_reference=statistics.median(ratios),
        reference_verified=verify_reference(),
        easy_replay_ms=easy_ms,
        easy_replay_jobs=easy_jobs,
        settings={"num_envs": NUM_ENVS, "num_hosts": PLACE_HOSTS, "pick_window": PICK_WINDOW,
                  "seconds_per_sample": seconds, "repeats": repeats,
                  "trace": str(trace) if trace else None, "cpus": os.cpu_count(),
                  "machine": platform.machine(), "python": platform.python_version()},
        samples={"place": place, "pick": pick, "reference_place": reference,
                 "place_vs_reference": ratios, "easy_replay_ms": easy_samples},
    )
