"""simrs at scale: the hierarchical mode runs a 10,000-job, 1,000-host episode in one pass, and
the benchmark's Python reference is verified against the native `place` mode."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

import simrs
from app.bench.hierarchical import rss_mb
from app.bench.reference_place_env import ReferencePlaceEnv
from app.bench.sim import verify_reference
from tests.support.processes import oppen_cmd


def test_hierarchical_schedules_10k_jobs_on_1k_hosts_in_one_pass() -> None:
    # Small hosts and a burst of arrivals, so the queue really grows into the thousands.
    config = {"num_hosts": 1000, "episode_length": 10_000, "max_jobs_per_step": 50,
              "mean_interarrival_s": 0.05, "burst_prob": 0.9, "host_cores": (4, 8),
              "host_mem_mb": (65_536, 131_072)}
    env = simrs.Env("hierarchical", config, 7)
    mask = np.zeros(env.action_dim, dtype=np.int8)
    assert env.action_dim == 10_000  # every queued job is selectable: nothing truncated
    obs = np.zeros(env.obs_dim, dtype=np.float32)
    start_rss, peak_rss, peak_queue, steps = rss_mb(), 0.0, 0, 0
    t0 = time.perf_counter()
    while not env.done:
        env.mask_into(mask)
        allowed = np.flatnonzero(mask)
        assert len(allowed), "a live episode always offers an action"
        env.step(int(allowed[-1]))  # the newest fitting job, then its last fitting host
        steps += 1
        peak_queue = max(peak_queue, env.queue_length)
        if steps % 2000 == 0:
            env.observe_into(obs)  # the full observation stays the same size throughout
            peak_rss = max(peak_rss, rss_mb())
    elapsed = time.perf_counter() - t0
    m = env.metrics()
    assert m["jobs"] == m["completed"] == 10_000 and m["completion_rate"] == 1.0
    assert steps == 20_000  # one job decision and one host decision per job
    assert peak_queue > 2_000
    print(f"hierarchical 10k jobs / 1k hosts: {elapsed:.2f}s, peak queue {peak_queue}, "
          f"RSS {start_rss:.0f} -> peak {peak_rss:.0f} MB")
    assert peak_rss - start_rss < 64  # flat: buffers are sized once, not per queued job


def test_python_reference_matches_native_place_mode() -> None:
    assert verify_reference(num_hosts=6, seeds=range(5))
    native = simrs.Env("place", {"num_hosts": 4, "episode_length": 50}, 3)
    ref = ReferencePlaceEnv(*native.episode())
    assert ref.step(0)[1] is False or ref.done


def test_bench_sim_reports_same_run_ratios(oppen_home: Path) -> None:
    proc = subprocess.run(oppen_cmd("bench", "sim", "--seconds", "0.2", "--repeats", "1",
                                    "--json"), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["schema_version"] == 1 and out["benchmark"] == "sim"
    assert out["reference_verified"] is True
    assert out["place_steps_per_s"] > 0 and out["pick_steps_per_s"] > 0
    assert out["place_vs_reference"] == pytest.approx(
        out["samples"]["place"][0] / out["samples"]["reference_place"][0])
    assert out["settings"]["num_envs"] == 256 and out["settings"]["num_hosts"] == 64
    print(f"bench sim: place {out['place_steps_per_s']:,.0f}/s, pick "
          f"{out['pick_steps_per_s']:,.0f}/s, {out['place_vs_reference']:.0f}x reference, "
          f"EASY replay {out['easy_replay_ms']} ms")


def test_bench_sim_hierarchical_schedules_10k_jobs_with_each_pair(oppen_home: Path) -> None:
    proc = subprocess.run(oppen_cmd("bench", "sim", "--mode", "hierarchical", "--json"),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["benchmark"] == "sim-hierarchical" and (out["jobs"], out["hosts"]) == (
        10_000, 1_000)
    by_pair = {p["pair"]: p for p in out["pairs"]}
    assert set(by_pair) == {"fcfs+first_fit", "sjf+best_fit", "f1+best_fit_mem"}
    for p in by_pair.values():
        # One pass, nothing truncated: every job decided and placed.
        assert p["jobs_completed"] == 10_000 and p["decisions"] == 20_000
        assert p["peak_queue"] > 2_000
        assert p["rss_peak_mb"] - p["rss_start_mb"] < 64
        assert 0 < p["decision"]["median_us"] <= p["decision"]["p99_us"]
    # Shortest-first waits less than FCFS on this bursty workload.
    assert by_pair["sjf+best_fit"]["mean_bounded_slowdown"] < \
        by_pair["fcfs+first_fit"]["mean_bounded_slowdown"]
    network = out["policy"]
    assert network["samples"]["job"] > 0 and network["samples"]["host"] > 0
    assert network["job_phase"]["median_us"] > 0 and out["policy_vs_pair_median"] > 0
