"""`oppen bench sim --mode hierarchical`: the hierarchical mode at production scale.

One synthetic episode of 10,000 jobs on 1,000 hosts (small hosts and bursty arrivals, so the
queue grows into the thousands) is scheduled in one pass, nothing truncated, by each of three
heuristic pairs (a job rule, then a host rule, decided inside simrs); every decision is timed,
and the process's memory is read as the episode runs. Then a hierarchical policy's network
(untrained: its cost does not depend on its weights) decides on observations of the same
episode, sampled every `stride` decisions of each phase: its decision latency, against the
pairs' in the same run.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

JOBS = 10_000
HOSTS = 1_000
CONFIG: dict[str, Any] = {"num_hosts": HOSTS, "episode_length": JOBS, "max_jobs_per_step": 50,
                          "mean_interarrival_s": 0.05, "burst_prob": 0.9,
                          "host_cores": (4, 8), "host_mem_mb": (65_536, 131_072)}
PAIRS = ("fcfs+first_fit", "sjf+best_fit", "f1+best_fit_mem")


def rss_mb() -> float:
    """This process's resident memory (Linux)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * 4096 / 2**20


def _quantiles(seconds: list[float]) -> dict[str, float]:
    us = sorted(s * 1e6 for s in seconds)
    return {"median_us": statistics.median(us), "p99_us": us[int(0.99 * (len(us) - 1))],
            "max_us": us[-1]}


def pair_episode(pair: str, seed: int = 7) -> dict[str, Any]:
    """One whole episode decided by `pair` inside simrs, every decision timed."""
    import simrs

    env = simrs.Env("hierarchical", CONFIG, seed)
    start_rss = peak_rss = rss_mb()
    decide: list[float] = []
    peak_queue = 0
    began = time.perf_counter()
    while not env.done:
        t = time.perf_counter()
        action = env.heuristic_action(pair)
        decide.append(time.perf_counter() - t)
        env.step(action)
        peak_queue = max(peak_queue, env.queue_length)
        if len(decide) % 2000 == 0:
            peak_rss = max(peak_rss, rss_mb())
    seconds = time.perf_counter() - began
    m = env.metrics()
    return {"pair": pair, "decisions": len(decide), "episode_s": seconds,
            "decision": _quantiles(decide), "peak_queue": peak_queue,
            "rss_start_mb": start_rss, "rss_peak_mb": max(peak_rss, rss_mb()),
            "jobs_completed": int(m["completed"]), "mean_wait_s": m["mean_wait_s"],
            "mean_bounded_slowdown": m["mean_bounded_slowdown"]}


def policy_latency(hidden: int = 32, stride: int = 100, seed: int = 7) -> dict[str, Any]:
    """The network's decision time on the episode's own observations (FCFS + first-fit
    drives it), sampled every `stride` decisions, per phase."""
    import torch

    import simrs
    from app.training.policy import make_policy

    env = simrs.Env("hierarchical", CONFIG, seed)
    policy = make_policy("hierarchical", hidden, HOSTS, False).eval()
    obs = np.zeros(env.obs_dim, dtype=np.float32)
    mask = np.zeros(env.action_dim, dtype=np.int8)
    times: dict[str, list[float]] = {"job": [], "host": []}
    start_rss = peak_rss = rss_mb()
    decisions = 0
    with torch.inference_mode():
        while not env.done:
            if decisions % stride < 2:  # a job decision and the host decision after it
                env.observe_into(obs)
                env.mask_into(mask)
                o = torch.from_numpy(obs).unsqueeze(0)
                m = torch.from_numpy(mask).bool().unsqueeze(0)
                t = time.perf_counter()
                action = int(policy.greedy(o, m).item())
                times["host" if obs[0] else "job"].append(time.perf_counter() - t)
                if not mask[action]:
                    raise AssertionError("the policy chose a masked action")
                peak_rss = max(peak_rss, rss_mb())
            env.step(env.heuristic_action("fcfs+first_fit"))
            decisions += 1
    return {"hidden": hidden, "stride": stride, "samples": {k: len(v) for k, v in times.items()},
            "job_phase": _quantiles(times["job"]), "host_phase": _quantiles(times["host"]),
            "rss_start_mb": start_rss, "rss_peak_mb": peak_rss}


def run(stride: int = 100) -> dict[str, Any]:
    pairs = [pair_episode(p) for p in PAIRS]
    network = policy_latency(stride=stride)
    rust = statistics.median(p["decision"]["median_us"] for p in pairs)
    return {"jobs": JOBS, "hosts": HOSTS, "workload": CONFIG, "pairs": pairs,
            "policy": network,
            # The network's median decision against the pairs' (same run, same episode).
            "policy_vs_pair_median": statistics.median(
                [network["job_phase"]["median_us"], network["host_phase"]["median_us"]]) / rust}
