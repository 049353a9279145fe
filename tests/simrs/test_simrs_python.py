"""The simrs Python package: Gymnasium API for every mode, determinism, masks, errors, the
vector environments and the trace loader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import simrs

SMALL = {"num_hosts": 3, "episode_length": 30, "max_jobs_per_step": 6,
         "mean_interarrival_s": 20.0}


def first_valid(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def play(env: simrs.ClusterEnv, seed: int, rule: str | None = None) -> tuple[
        float, dict[str, float], list[int]]:
    _, info = env.reset(seed=seed)
    total, done, actions = 0.0, False, []
    while not done:
        a = env.heuristic_action(rule) if rule else first_valid(info["action_mask"])
        actions.append(a)
        _, reward, done, _, info = env.step(a)
        total += reward
    return total, info["episode_metrics"], actions


@pytest.mark.parametrize("mode", simrs.MODES)
def test_gymnasium_env_checker_passes(mode: str) -> None:
    check_env(simrs.ClusterEnv(mode, SMALL, seed=0, window=8, invalid_action="remap"),
              skip_render_check=True)


def test_place_observation_layout_and_mask() -> None:
    env = simrs.ClusterPlaceEnv(SMALL, seed=3)
    obs, info = env.reset(seed=3)
    assert obs.dtype == np.float32 and obs.shape == (3 * 4 + 2,)
    assert info["action_mask"].dtype == np.int8 and info["action_mask"].shape == (3,)
    assert np.all((obs >= 0) & (obs <= 1))
    assert obs[2:12:4].max() == pytest.approx(1.0)  # cores relative to the largest host


def test_pick_observation_rows() -> None:
    env = simrs.ClusterPickEnv(SMALL, seed=1, window=16)
    obs, info = env.reset(seed=1)
    rows = obs.reshape(16, 8)
    filled = int(info["action_mask"].sum())
    assert filled >= 1
    np.testing.assert_array_equal(rows[filled:], np.tile([0, 1, 1, 1, 1, 1, 1, 0], (16 - filled, 1)))
    assert np.all((rows[:filled] >= 0) & (rows[:filled] <= 1))


@pytest.mark.parametrize("mode", simrs.MODES)
def test_same_seed_same_trajectory(mode: str) -> None:
    a = play(simrs.ClusterEnv(mode, SMALL, window=8), 42)
    b = play(simrs.ClusterEnv(mode, SMALL, window=8), 42)
    c = play(simrs.ClusterEnv(mode, SMALL, window=8), 43)
    assert a == b
    assert a[1] != c[1]
    assert a[1]["jobs"] == a[1]["completed"] == 30


def test_place_return_equals_minus_wait_hours_and_rewards_agree() -> None:
    total, metrics, _ = play(simrs.ClusterPlaceEnv(SMALL), 42, "first_fit")
    assert total == pytest.approx(-metrics["mean_wait_s"] * 30 / 3600)
    dense, m1, _ = play(simrs.ClusterPlaceEnv(SMALL, reward="bsld_dense"), 5, "best_fit")
    terminal, m2, _ = play(simrs.ClusterPlaceEnv(SMALL, reward="bsld_terminal"), 5, "best_fit")
    assert dense == pytest.approx(terminal) == pytest.approx(-m1["mean_bounded_slowdown"])
    assert m1 == m2


def test_hierarchical_alternates_job_and_host_phases() -> None:
    env = simrs.ClusterHierarchicalEnv(SMALL, seed=2)
    obs, info = env.reset(seed=2)
    assert env.phase == 0 and obs[0] == 0.0
    obs, reward, done, _, info = env.step(first_valid(info["action_mask"]))
    assert env.phase == 1 and obs[0] == 1.0 and reward == 0.0
    assert info["action_mask"][:3].sum() >= 1 and info["action_mask"][3:].sum() == 0


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
    with pytest.raises(simrs.ConfigError, match="unknown placement"):
        env.heuristic_action("smartest")
    with pytest.raises(simrs.ConfigError, match="unknown mode"):
        simrs.ClusterEnv("juggle")
    with pytest.raises(simrs.ConfigError, match="unknown reward"):
        simrs.ClusterPickEnv(reward="happiness")
    assert issubclass(simrs.ConfigError, ValueError)


@pytest.mark.parametrize("mode", simrs.MODES)
def test_batch_env_matches_single_envs(mode: str) -> None:
    batch = simrs.BatchEnv(mode, 3, SMALL, 10, window=8)
    obs, masks = batch.reset(10)
    lone = simrs.ClusterEnv(mode, SMALL, window=8)
    o, info = lone.reset(seed=10)  # env 0's first episode uses the seed as given
    np.testing.assert_array_equal(obs[0], o)
    np.testing.assert_array_equal(masks[0], info["action_mask"])
    for _ in range(30):
        a = int(np.flatnonzero(masks[0])[0])
        actions = np.array([a] + [int(np.flatnonzero(m)[0]) for m in masks[1:]])
        obs, masks, rewards, dones, finished = batch.step(actions)
        o, r, d, _, info = lone.step(a)
        assert rewards[0] == pytest.approx(r, rel=1e-6)
        if d:
            assert dones[0] and finished[0].env_index == 0
            assert finished[0].metrics == info["episode_metrics"]
            break
        np.testing.assert_array_equal(obs[0], o)


@pytest.mark.parametrize("mode", simrs.MODES)
def test_shards_step_exactly_the_whole_sets_environments(mode: str) -> None:
    """Split between workers (first_index: where a shard starts in the whole set), the
    shards step the same episodes as one set of all the environments, resets included."""
    whole = simrs.BatchEnv(mode, 4, SMALL, 10, window=8)
    shards = [simrs.BatchEnv(mode, 2, SMALL, 10, window=8, first_index=i) for i in (0, 2)]
    obs, masks = whole.reset(10)
    parts = [shard.reset(10) for shard in shards]
    ended = 0
    for _ in range(60):
        np.testing.assert_array_equal(obs, np.concatenate([p[0] for p in parts]))
        np.testing.assert_array_equal(masks, np.concatenate([p[1] for p in parts]))
        actions = np.array([int(np.flatnonzero(m)[-1]) for m in masks])
        obs, masks, rewards, dones, finished = whole.step(actions)
        stepped = [shard.step(actions[2 * k:2 * k + 2]) for k, shard in enumerate(shards)]
        np.testing.assert_array_equal(rewards, np.concatenate([p[2] for p in stepped]))
        np.testing.assert_array_equal(dones, np.concatenate([p[3] for p in stepped]))
        ended += int(dones.sum())
        parts = [(p[0], p[1]) for p in stepped]
    assert ended > 0  # episodes ended and were reset from their global seeds


def test_gymnasium_vector_env_autoresets_in_the_same_step() -> None:
    venv = simrs.ClusterVectorEnv("place", 4, SMALL, 0)
    obs, info = venv.reset(seed=0)
    assert obs.shape == (4, 14) and info["action_mask"].shape == (4, 3)
    ended = 0
    for _ in range(100):
        actions = info["action_mask"].argmax(axis=1)
        obs, rewards, terms, truncs, info = venv.step(actions)
        assert rewards.shape == (4,) and not truncs.any()
        if terms.any():
            assert info["_final_info"].tolist() == terms.tolist()
            for i in np.flatnonzero(terms):
                assert info["final_info"][i]["metrics"]["jobs"] == 30
            ended += int(terms.sum())
    assert ended >= 4
    with pytest.raises(simrs.InvalidActionError):
        venv.step(np.array([-1, 0, 0, 0]))


def test_trace_loader_errors_name_file_and_line(tmp_path: Path) -> None:
    good = "; MaxNodes: 4\n1 0 -1 10 2 -1 -1 2 -1 -1 1 1 1 1 0 -1 -1 -1\n"
    path = tmp_path / "t.swf"
    path.write_text(good + "2 5 -1 oops\n")
    with pytest.raises(simrs.TraceError, match=r"t\.swf:3: expected 18 fields, found 4"):
        simrs.load_trace(path)
    t = simrs.load_trace(path, skip_malformed=True)
    assert t.num_jobs == 1 and t.dropped()["malformed"] == 1 and t.capacity == 4
    with pytest.raises(simrs.TraceError, match="No such file"):
        simrs.load_trace(tmp_path / "missing.swf")
    with pytest.raises(simrs.TraceError, match="must be > 0"):
        simrs.load_trace(tmp_path / "t.swf", skip_malformed=True, load_scale=0)
