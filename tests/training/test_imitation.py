"""The warm start by imitation (`imitate`): behaviour cloning of a heuristic before PPO."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from app.core.errors import ConfigError
from app.training import checkpoint, imitation
from app.training.config import TrainConfig
from app.training.ppo import Trainer

SMALL = dict(num_hosts=8, episode_length=64, max_jobs_per_step=8, mean_interarrival_s=20.0,
             job_cores=(1, 8), job_mem_mb=(1024, 65_536), num_envs=4, rollout_steps=64,
             num_minibatches=2, update_epochs=2, eval_seeds=(42,))


def test_imitate_names_a_heuristic_of_the_mode() -> None:
    with pytest.raises(ConfigError, match="choose one of first_fit, best_fit, best_fit_mem"):
        TrainConfig(imitate="f1")  # a pick rule, in place mode
    with pytest.raises(ConfigError, match="choose one of fcfs, sjf, smallest, f1"):
        TrainConfig(mode="pick", imitate="best_fit")
    with pytest.raises(ConfigError, match="choose one of fcfs\\+first_fit, fcfs\\+best_fit"):
        TrainConfig(mode="hierarchical", imitate="fcfs")  # a job rule needs its host rule
    assert TrainConfig(mode="hierarchical", imitate="sjf+best_fit").imitate == "sjf+best_fit"
    with pytest.raises(ConfigError, match="versus: the hierarchical mode has no heuristic"):
        TrainConfig(mode="hierarchical", versus="sjf+best_fit")
    with pytest.raises(ConfigError, match="imitate_steps: must be >= 1"):
        TrainConfig.from_dict({"imitate": "first_fit", "imitate_steps": 0})


def _agreement(policy: torch.nn.Module, cfg: TrainConfig, seeds: range) -> float:
    """How often the greedy policy chooses the heuristic's host where there is a choice."""
    import simrs

    same = total = 0
    for seed in seeds:
        env = simrs.ClusterEnv("place", cfg.env_config(), seed, reward=cfg.reward)
        obs, info = env.reset(seed=seed)
        done = False
        while not done:
            mask = info["action_mask"]
            expected = env.heuristic_action(cfg.imitate)
            if mask.sum() > 1:
                with torch.no_grad():
                    chosen = policy.greedy(torch.as_tensor(obs)[None],
                                           torch.as_tensor(mask).bool()[None]).item()
                same += int(chosen == expected)
                total += 1
            obs, _, done, _, info = env.step(expected)
    return same / total


def test_imitation_copies_the_heuristic_on_episodes_it_never_saw() -> None:
    cfg = TrainConfig(**SMALL, imitate="best_fit_mem", imitate_steps=4_000, imitate_epochs=15,
                      lr=3e-3)
    trainer = Trainer(cfg)
    before = _agreement(trainer.policy, cfg, range(900, 903))
    metrics = imitation.warm_start(trainer.policy, trainer.value_rms, cfg, trainer.rng,
                                   trainer.device)
    after = _agreement(trainer.policy, cfg, range(900, 903))
    assert metrics["imitation/decisions"] >= 4_000  # whole episodes: at least what was asked
    assert metrics["imitation/accuracy"] > 0.85
    print(f"agreement {before:.2f} -> {after:.2f}, train accuracy {metrics['imitation/accuracy']:.2f}")
    assert after > 0.8 and after > before + 0.3, (before, after)
    # The critic learned the heuristic's returns too: a value target's scale, not zero.
    assert trainer.value_rms.count > 4_000 and trainer.value_rms.mean < 0


def test_a_run_imitates_once_before_its_first_update_and_resumes_exactly(
        tmp_path: Path) -> None:
    cfg = TrainConfig(**SMALL, imitate="first_fit", imitate_steps=300, imitate_epochs=2,
                      total_timesteps=4 * 256, checkpoint_every=2)
    logged: list[dict[str, float]] = []
    full = Trainer(cfg, log=lambda m, _s: logged.append(m), checkpoint_dir=tmp_path / "full")
    full.run()
    assert sum("imitation/accuracy" in m for m in logged) == 1
    assert "imitation/accuracy" in logged[0]  # before the first update's metrics

    stop = threading.Event()
    half = Trainer(cfg, log=lambda _m, step: stop.set() if step >= 2 * 256 else None,
                   checkpoint_dir=tmp_path / "half", stop=stop)
    assert half.run().stopped == "sigterm"
    resumed_log: list[dict[str, float]] = []
    resumed = Trainer(cfg, log=lambda m, _s: resumed_log.append(m),
                      checkpoint_dir=tmp_path / "half")
    resumed.load_state_dict(checkpoint.load(tmp_path / "half" / "latest.pt"))
    resumed.run()
    assert not any("imitation/accuracy" in m for m in resumed_log)  # not a second time
    for a, b in zip(full.policy.state_dict().values(), resumed.policy.state_dict().values(),
                    strict=True):
        assert torch.equal(a, b)
    assert np.isclose(resumed.value_rms.mean, full.value_rms.mean)
