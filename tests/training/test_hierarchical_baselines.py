"""The hierarchical mode's baselines: every job rule paired with every host rule (simrs picks
the job, then the host, within the masks), and the job-shop seed's batch workaround, a
chooser shown only 170 queued jobs at a time."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import simrs
from app.training.evaluate import (
    EMPTY_JOB_ROW,
    HOST_RULES,
    JOB_RULES,
    baselines,
    batched,
    policy_choosers,
    run_episode,
)
from app.training.policy import make_policy

WORKLOAD = {"num_hosts": 6, "episode_length": 300, "max_jobs_per_step": 40,
            "mean_interarrival_s": 4.0}


def test_every_pair_acts_within_the_masks_and_fcfs_first_fit_is_the_first_allowed() -> None:
    pairs = baselines("hierarchical")
    assert list(pairs) == [f"{j}_{h}" for j in JOB_RULES for h in HOST_RULES]
    for name in pairs:
        env = simrs.ClusterEnv("hierarchical", WORKLOAD, 5)
        obs, info = env.reset(seed=5)
        done = False
        while not done:
            mask = info["action_mask"]
            action = env.heuristic_action(name.replace("_", "+", 1))
            assert mask[action] == 1, name
            if name == "fcfs_first_fit":
                assert action == int(np.flatnonzero(mask)[0])
            obs, _, done, _, info = env.step(action)
        assert env.heuristic_action("sjf+best_fit") is None  # the episode is over
    # The rules differ where they should: shortest-first waits far less than FCFS here.
    fcfs = run_episode(WORKLOAD, 5, pairs["fcfs_first_fit"], mode="hierarchical")
    sjf = run_episode(WORKLOAD, 5, pairs["sjf_first_fit"], mode="hierarchical")
    assert sjf["mean_wait_s"] < fcfs["mean_wait_s"]


@pytest.mark.parametrize(("name", "message"), [
    ("sjf", "takes a heuristic pair job_rule\\+host_rule"),
    ("sjf+nearest", "unknown placement \"nearest\""),
    ("shortest+best_fit", "unknown policy \"shortest\"")])
def test_a_bad_pair_is_one_clear_error(name: str, message: str) -> None:
    env = simrs.ClusterEnv("hierarchical", WORKLOAD, 1)
    env.reset(seed=1)
    with pytest.raises(simrs.ConfigError, match=message):
        env.heuristic_action(name)


def test_the_batch_workaround_shows_only_the_block_with_the_first_fitting_job() -> None:
    seen: list[tuple[np.ndarray, np.ndarray]] = []

    def first_allowed(_env: Any, obs: np.ndarray, mask: np.ndarray) -> int:
        seen.append((obs.copy(), mask.copy()))
        return int(np.flatnonzero(mask)[0])

    window = 10
    result = run_episode(WORKLOAD, 5, batched(first_allowed, window), mode="hierarchical")
    whole = run_episode(WORKLOAD, 5, baselines("hierarchical")["fcfs_first_fit"],
                        mode="hierarchical")
    # The first fitting job is always in the block shown, so FCFS decides as before.
    assert result["mean_wait_s"] == whole["mean_wait_s"]
    hosts, jobs = WORKLOAD["num_hosts"], WORKLOAD["episode_length"]
    job_phase = [(o, m) for o, m in seen if o[0] == 0]
    assert job_phase and any(m.sum() > 0 and np.flatnonzero(m)[0] >= window
                             for _, m in job_phase)  # later blocks were shown too
    for obs, mask in job_phase:
        allowed = np.flatnonzero(mask)
        lo = allowed[0] - allowed[0] % window
        assert allowed[-1] < lo + window  # nothing beyond the block is allowed
        rows = obs[9 + 4 * hosts:].reshape(jobs, 8)
        assert (rows[:lo] == EMPTY_JOB_ROW).all() and (rows[lo + window:] == EMPTY_JOB_ROW).all()


def test_a_hierarchical_policy_is_evaluated_whole_and_batched() -> None:
    policy = make_policy("hierarchical", 16, WORKLOAD["num_hosts"], False)
    rows = policy_choosers(policy.eval(), torch.device("cpu"), "hierarchical")
    assert list(rows) == ["ppo", "ppo_batch170"]
    assert list(policy_choosers(policy, torch.device("cpu"), "place")) == ["ppo"]
    for chooser in rows.values():
        metrics = run_episode(WORKLOAD, 2, chooser, mode="hierarchical")
        assert metrics["mean_wait_s"] >= 0
