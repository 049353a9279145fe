"""The simrs Python package: Gymnasium API, determinism, masks, errors and the vector env."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import simrs

SMALL = {"num_hosts": 3, "episode_length": 30, "max_jobs_per_step": 6,
         "mean_interarrival_s": 20.0}


def play(env: simrs.ClusterPlaceEnv, seed: int, rule: str) -> tuple[float, dict[str, float]]:
    env.reset(seed=seed)
    total, done, info = 0.0, False, {}
    while not done:
        _, reward, done, _, info = env.step(env.heuristic_action(rule))
        total += reward
    return total, info["episode_metrics"]


def test_gymnasium_env_checker_passes() -> None:
    check_env(simrs.ClusterPlaceEnv(SMALL, seed=0), skip_render_check=True)


def test_observation_layout_and_mask() -> None:
    env = simrs.ClusterPlaceEnv(SMALL, seed=3)
    obs, info = env.reset(seed=3)
    assert obs.dtype == np.float32 and obs.shape == (3 * 4 + 2,)
    assert info["action_mask"].dtype == np.int8 and info["action_mask"].shape == (3,)
    assert np.all((obs >= 0) & (obs <= 1))
    assert obs[2::4][:3].max() == pytest.approx(1.0)  # cores relative to the largest host


def test_same_seed_same_episode_and_return_equals_minus_wait_hours() -> None:
    env = simrs.ClusterPlaceEnv(SMALL)
    r1, m1 = play(env, 42, "first_fit")
    r2, m2 = play(env, 42, "first_fit")
    assert (r1, m1) == (r2, m2)
    assert m1["jobs"] == 30
    assert r1 == pytest.approx(-m1["mean_wait_s"] * 30 / 3600)


def test_errors_are_specific_exceptions() -> None:
    env = simrs.ClusterPlaceEnv(SMALL, seed=1)
    env.reset(seed=1)
    with pytest.raises(simrs.InvalidActionError, match="no such host"):
        env.step(7)
    play(env, 1, "best_fit")
    with pytest.raises(simrs.EpisodeOverError):
        env.step(0)
    with pytest.raises(simrs.ConfigError, match="unknown workload option"):
        simrs.ClusterPlaceEnv({"hosts": 3})
    with pytest.raises(simrs.ConfigError, match="largest job must fit"):
        simrs.ClusterPlaceEnv({"job_cores": (1, 64)})
    with pytest.raises(simrs.ConfigError, match="unknown heuristic"):
        env.heuristic_action("random")
    assert issubclass(simrs.ConfigError, ValueError)


def test_vector_env_matches_single_envs() -> None:
    vec = simrs.PlaceVectorEnv(SMALL, num_envs=3, seed=10)
    obs, mask = vec.reset(10)
    singles = [simrs.ClusterPlaceEnv(SMALL) for _ in range(3)]
    for i, env in enumerate(singles):
        o, info = env.reset(seed=10 + i)
        np.testing.assert_array_equal(obs[i], o)
        np.testing.assert_array_equal(mask[i], info["action_mask"])
    finished_total = 0
    for _ in range(200):
        actions = mask.argmax(axis=1)
        obs, mask, rewards, dones, finished = vec.step(actions)
        assert rewards.dtype == np.float32 and dones.dtype == bool
        assert len(finished) == int(dones.sum())
        finished_total += len(finished)
        assert all(f.length == 30 and f.metrics["jobs"] == 30 for f in finished)
    assert finished_total == 3 * (200 // 30)
    with pytest.raises(simrs.InvalidActionError):
        vec.step(np.array([-1, 0, 0]))
