"""Training episodes scored against a heuristic (`versus`): the control variate."""

from __future__ import annotations

import numpy as np
import pytest

import simrs
from app.core.errors import ConfigError
from app.training.config import TrainConfig
from app.training.ppo import Trainer

WORKLOAD = dict(num_hosts=4, episode_length=48, max_jobs_per_step=8, mean_interarrival_s=20.0,
                job_cores=(1, 8), job_mem_mb=(1024, 65_536))


def _first_episode(seed: int, versus: str | None) -> tuple[list[float], dict[str, float]]:
    """Rewards of env 0's first episode (whose seed is `seed`) under first-allowed actions."""
    kw = {"versus": versus} if versus else {}
    env = simrs.BatchEnv("place", 1, WORKLOAD, seed, reward="wait", **kw)
    rewards: list[float] = []
    while True:
        action = np.array([np.flatnonzero(env.masks[0])[0]])
        _, _, r, _, finished = env.step(action)
        rewards.append(float(r[0]))
        if finished:
            return rewards, finished[0].metrics


def _heuristic_return(seed: int, rule: str) -> float:
    env = simrs.ClusterEnv("place", WORKLOAD, seed, reward="wait")
    env.reset(seed=seed)
    total, done = 0.0, False
    while not done:
        _, r, done, _, _ = env.step(env.heuristic_action(rule))
        total += r
    return total


@pytest.mark.parametrize("seed", [3, 11])
def test_an_episode_ends_minus_the_heuristics_return_on_the_same_jobs(seed: int) -> None:
    plain, plain_metrics = _first_episode(seed, None)
    versus, versus_metrics = _first_episode(seed, "best_fit")
    baseline = _heuristic_return(seed, "best_fit")
    assert baseline < 0  # jobs waited: the subtraction is not a no-op
    assert versus[:-1] == plain[:-1]  # every step but the last is untouched
    assert versus[-1] == pytest.approx(plain[-1] - baseline, rel=1e-5, abs=1e-4)
    assert versus_metrics == plain_metrics  # the episode itself is the same


def test_versus_names_a_heuristic_of_the_mode() -> None:
    with pytest.raises(ConfigError, match="training option versus: choose one of first_fit"):
        TrainConfig(versus="sjf")
    for rule in ("fcfs", "sjf+best_fit"):  # neither a rule nor a pair: simrs plays neither
        with pytest.raises(ConfigError, match="versus: the hierarchical mode has no heuristic"):
            TrainConfig(mode="hierarchical", versus=rule)
    with pytest.raises(simrs.ConfigError, match="unknown placement"):
        simrs.BatchEnv("place", 1, WORKLOAD, 0, versus="f1")


def test_a_run_against_a_heuristic_changes_the_returns_and_nothing_else() -> None:
    """The first rollout's actions are the same with and without `versus` (same seed, and a
    reward changes nothing before the update): the same episodes, returns shifted by the
    heuristic's (negative) ones."""
    base = dict(**WORKLOAD, total_timesteps=256, num_envs=4, rollout_steps=64,
                num_minibatches=2, update_epochs=1)
    runs = {}
    for versus in ("", "first_fit"):
        logged: list[dict[str, float]] = []
        Trainer(TrainConfig(**base, versus=versus),
                log=lambda m, _s, out=logged: out.append(m)).run()
        runs[versus] = next(m for m in logged if "charts/episodic_return" in m)
    plain, versus = runs[""], runs["first_fit"]
    assert versus["charts/mean_wait_s"] == plain["charts/mean_wait_s"]
    assert versus["charts/episodes"] == plain["charts/episodes"] > 0
    assert versus["charts/episodic_return"] > plain["charts/episodic_return"]
