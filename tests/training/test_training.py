"""PPO pieces: GAE against a hand computation, config validation, the policy's symmetry, and a
short real training run."""

from __future__ import annotations

import math

import pytest
import torch

from app.core.errors import ConfigError
from app.training.config import TrainConfig
from app.training.gae import compute_gae
from app.training.policy import PlacePolicy
from app.training.ppo import train


def test_gae_matches_hand_computation() -> None:
    gamma, lam = 0.9, 0.8
    rewards = torch.tensor([[1.0], [2.0], [3.0]])
    values = torch.tensor([[0.5], [1.0], [1.5]])
    dones = torch.tensor([[0.0], [0.0], [1.0]])  # obs 2 starts a new episode
    next_value, next_done = torch.tensor([2.0]), torch.tensor([0.0])
    adv, ret = compute_gae(rewards, values, dones, next_value, next_done, gamma, lam)
    d2 = 3.0 + gamma * 2.0 - 1.5
    a2 = d2
    d1 = 2.0 + 0.0 - 1.0  # bootstrap cut: obs 2 begins a new episode
    a1 = d1
    d0 = 1.0 + gamma * 1.0 - 0.5
    a0 = d0 + gamma * lam * a1
    assert torch.allclose(adv[:, 0], torch.tensor([a0, a1, a2]))
    assert torch.allclose(ret, adv + values)


def test_config_validation_names_the_option() -> None:
    with pytest.raises(ConfigError, match="gamma: must be <= 1"):
        TrainConfig.from_dict({"gamma": 1.5})
    with pytest.raises(ConfigError, match="num_envs: expected int"):
        TrainConfig.from_dict({"num_envs": 2.5})
    with pytest.raises(ConfigError, match="unknown training option"):
        TrainConfig.from_dict({"gama": 0.9})
    with pytest.raises(ConfigError, match="device"):
        TrainConfig.from_dict({"device": "tpu"})
    cfg = TrainConfig.from_dict({"total_timesteps": "2048", "eval_seeds": [1, 2]})
    assert cfg.total_timesteps == 2048 and cfg.eval_seeds == (1, 2)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


def test_the_synthetic_workload_sizes_are_options_checked_before_simrs_starts() -> None:
    import simrs

    cfg = TrainConfig.from_dict({"job_cores": "1,16", "eval_seeds": "7,8", "num_hosts": 8})
    assert cfg.job_cores == (1, 16) and cfg.eval_seeds == (7, 8)  # what --set KEY=1,16 gives
    assert cfg.workload()["job_cores"] == (1, 16)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    _hosts, jobs = simrs.Env("place", cfg.workload(), 3).episode()
    assert max(cores for *_, cores, _mem in jobs) > 4  # the default workload's largest is 4
    for bad, says in [({"job_cores": [4, 1]}, "job_cores: expected low,high"),
                      ({"host_cores": [8]}, "host_cores: expected low,high"),
                      ({"job_mem_mb": "512,x"}, "job_mem_mb: expected tuple"),
                      ({"job_cores": [1, 64]}, "largest job must fit on the smallest host")]:
        with pytest.raises(ConfigError, match=says):
            TrainConfig.from_dict(bad)


def test_the_option_choices_listed_without_importing_simrs_are_simrs_own() -> None:
    # config.py and the sim CLI keep these lists to validate before simrs loads; a rule
    # added to simrs (or renamed) must show up here, or it is refused as unknown.
    import simrs
    from app.cli.sim_cmds import PLACEMENTS, POLICIES
    from app.training.config import HEURISTICS, REWARDS

    assert HEURISTICS["place"] == simrs.PLACEMENTS and HEURISTICS["pick"] == simrs.PRIORITIES
    for pair in HEURISTICS["hierarchical"]:  # a job rule and a host rule simrs knows
        job, host = pair.split("+")
        assert job in simrs.PRIORITIES and host in simrs.PLACEMENTS, pair
    assert set(HEURISTICS) == {"place", "pick", "hierarchical"}
    assert tuple(POLICIES) == simrs.PRIORITIES + simrs.CLAIRVOYANT_PRIORITIES
    assert tuple(PLACEMENTS) == simrs.PLACEMENTS
    assert REWARDS == simrs.REWARDS


def test_config_from_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    good = tmp_path / "c.toml"
    good.write_text("total_timesteps = 1024\nlr = 0.001\n")
    assert TrainConfig.from_file(good).lr == 0.001
    bad = tmp_path / "bad.toml"
    bad.write_text("total_timesteps = = 3")
    with pytest.raises(ConfigError, match="cannot parse"):
        TrainConfig.from_file(bad)
    with pytest.raises(ConfigError, match="not found"):
        TrainConfig.from_file(tmp_path / "missing.toml")


def test_policy_is_permutation_equivariant_and_respects_the_mask() -> None:
    torch.manual_seed(0)
    policy = PlacePolicy(hidden=16)
    hosts, job = torch.rand(1, 5, 4), torch.rand(1, 2)
    obs = torch.cat([hosts.reshape(1, -1), job], dim=1)
    mask = torch.tensor([[True, False, True, True, False]])
    perm = torch.tensor([3, 0, 4, 1, 2])
    obs_p = torch.cat([hosts[:, perm].reshape(1, -1), job], dim=1)
    logits, logits_p = policy.logits(obs, mask), policy.logits(obs_p, mask[:, perm])
    assert torch.allclose(logits[:, perm], logits_p, atol=1e-6)
    assert torch.allclose(policy.value(obs), policy.value(obs_p), atol=1e-6)
    actions, *_ = policy.act(obs.repeat(200, 1), mask.repeat(200, 1))
    assert set(actions.tolist()) <= {0, 2, 3}
    # One set of weights serves a cluster of a different size.
    bigger = torch.rand(3, 9 * 4 + 2)
    assert policy.logits(bigger, torch.ones(3, 9, dtype=torch.bool)).shape == (3, 9)


def test_short_training_run_logs_grouped_metrics() -> None:
    seen: list[tuple[dict[str, float], int]] = []
    cfg = TrainConfig(total_timesteps=1024, num_envs=4, rollout_steps=64, episode_length=16)
    result = train(cfg, log=lambda m, step: seen.append((m, step)))
    assert result.global_step == 1024
    assert result.episodes >= 1024 // 16 - 4
    assert len(seen) == cfg.num_iterations
    steps = [s for _, s in seen]
    assert steps == sorted(steps) and steps[-1] == 1024
    last = seen[-1][0]
    assert all(math.isfinite(last[k]) for k in ("losses/value_loss", "losses/policy_loss",
                                               "losses/entropy", "charts/SPS"))
    assert last["charts/learning_rate"] < cfg.lr  # annealed
    assert last["charts/episodic_return"] <= 0.0  # rewards are minus waiting hours
