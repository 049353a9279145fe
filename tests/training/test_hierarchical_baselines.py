"""The hierarchical mode's baselines: every job rule paired with every host rule (simrs picks
the job, then the host, within the masks), and the job-shop seed's batch workaround, a
chooser shown only 170 queued jobs at a time."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
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
from tests.support.processes import oppen_cmd

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


@pytest.mark.parametrize(("mode", "workload", "name"), [
    ("hierarchical", WORKLOAD, "sjf+tetris"), ("hierarchical", WORKLOAD, "f1+worst_fit"),
    ("place", {"num_hosts": 8, "episode_length": 200}, "best_fit_mem"),
    ("pick", {"num_hosts": 4, "episode_length": 120}, "f1")])
def test_a_heuristic_evaluated_inside_simrs_matches_the_observed_loop(
        mode: str, workload: dict[str, Any], name: str) -> None:
    """Evaluations run a heuristic's episodes on a bare simrs.Env, building no observations;
    the episode is the one the gymnasium loop with observations and masks plays."""
    from app.training.evaluate import HeuristicChooser, heuristic_chooser

    chooser = heuristic_chooser(name)
    assert isinstance(chooser, HeuristicChooser)
    fast = run_episode(workload, 3, chooser, mode=mode)
    observed = run_episode(workload, 3, lambda env, _o, _m: int(env.heuristic_action(name)),
                           mode=mode)
    assert fast == observed
    assert fast["completed"] > 0


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


def test_a_hierarchical_run_imitates_a_pair_then_evaluates_on_a_longer_workload(
        oppen_home: Path, tmp_path: Path) -> None:
    """A hierarchical run can start from a heuristic pair's decisions, and `oppen eval --set`
    judges it on other episodes of its workload (the shipped policy's 10,000-job table is
    made so) against every pair and its own batch workaround."""
    from app.training.config import TrainConfig
    from app.training.ppo import Trainer

    cfg = TrainConfig(mode="hierarchical", num_hosts=6, episode_length=60, num_envs=2,
                      rollout_steps=32, total_timesteps=64, num_minibatches=2,
                      update_epochs=1, imitate="sjf+best_fit", imitate_steps=200,
                      eval_seeds=(3,), max_jobs_per_step=40, mean_interarrival_s=4.0)
    Trainer(cfg, checkpoint_dir=tmp_path).run()
    proc = subprocess.run(oppen_cmd("eval", "--checkpoint", str(tmp_path / "latest.pt"),
                                    "--seeds", "5", "--set", "episode_length=150",
                                    "--set", "mean_interarrival_s=2", "--json"),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["workload"] == {"episode_length": 150, "mean_interarrival_s": 2.0}
    results = out["results"]
    assert set(results) == {"ppo", "ppo_batch170", *baselines("hierarchical")}
    # The longer episode was the one run: as many jobs ended as it holds.
    assert results["sjf_best_fit"]["jobs"] == results["ppo"]["completed"] == 150


@pytest.mark.parametrize(("sets", "message"), [
    (["window=8"], "window is not a workload option"),
    (["num_hosts=7"], "reads exactly the 6 hosts"),
    (["episode_length=0"], "episode_length"),
    (["episode_length"], "--set expects KEY=VALUE")])
def test_eval_refuses_a_workload_it_cannot_judge_in_one_line(
        oppen_home: Path, tmp_path: Path, sets: list[str], message: str) -> None:
    from app.training.config import TrainConfig
    from app.training.ppo import Trainer

    Trainer(TrainConfig(mode="hierarchical", num_hosts=6, episode_length=30, num_envs=2,
                        rollout_steps=16, total_timesteps=32, num_minibatches=1,
                        update_epochs=1), checkpoint_dir=tmp_path).run()
    args = [a for s in sets for a in ("--set", s)]
    proc = subprocess.run(oppen_cmd("eval", "--checkpoint", str(tmp_path / "latest.pt"),
                                    *args), capture_output=True, text=True, timeout=120)
    assert proc.returncode in (1, 2) and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
