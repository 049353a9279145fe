"""Choosing a run's checkpoint on validation episodes (`oppen policy select`)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch

from app.core.errors import ConfigError, NotFoundError
from app.training.config import TrainConfig
from app.training.evaluate import evaluate_config, policy_chooser
from app.training.inference import LoadedPolicy
from app.training.ppo import Trainer
from app.training.selection import checkpoints_in, lockstep_metric, rank
from tests.support.processes import oppen_cmd

RUN = dict(total_timesteps=1536, num_envs=4, rollout_steps=64, episode_length=24,
           num_minibatches=2, update_epochs=1, num_hosts=4, checkpoint_every=2,
           eval_seeds=(42,))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("run")
    Trainer(TrainConfig(**RUN), checkpoint_dir=folder).run()
    return folder


def test_a_runs_checkpoints_are_found_oldest_first_without_the_copies(run_dir: Path) -> None:
    found = checkpoints_in(run_dir)
    assert [p.name for p in found] == ["step-512.pt", "step-1024.pt", "step-1536.pt"]
    assert (run_dir / "latest.pt").exists()  # a copy of the last, not listed twice


def test_lockstep_episodes_score_what_one_at_a_time_episodes_score(run_dir: Path) -> None:
    """The batched rollout is only faster: each episode is the same as when it runs alone."""
    loaded = LoadedPolicy.from_checkpoint(run_dir / "step-1024.pt")
    seeds = [5, 6, 7]
    alone = evaluate_config(loaded.config,
                            {"ppo": policy_chooser(loaded.policy, torch.device("cpu"))},
                            seeds)["ppo"]["mean_wait_s"]
    assert lockstep_metric(loaded, loaded.config, seeds) == pytest.approx(alone, rel=1e-9)


def test_rank_orders_every_checkpoint_by_its_validation_score(run_dir: Path) -> None:
    ranked = rank(run_dir, [5, 6, 7])
    assert sorted(s.global_step for s in ranked) == [512, 1024, 1536]
    assert [s.metric for s in ranked] == sorted(s.metric for s in ranked)
    for s in ranked:
        loaded = LoadedPolicy.from_checkpoint(s.path)
        assert s.metric == pytest.approx(lockstep_metric(loaded, loaded.config, [5, 6, 7]))


def test_rank_refuses_what_is_not_a_run(tmp_path: Path, run_dir: Path) -> None:
    with pytest.raises(NotFoundError, match="no step-N.pt checkpoints"):
        rank(tmp_path, [1])
    with pytest.raises(NotFoundError, match="checkpoint folder not found"):
        rank(tmp_path / "missing", [1])
    with pytest.raises(ConfigError, match="at least one validation seed"):
        rank(run_dir, [])


def test_select_cli_ranks_copies_the_winner_and_explains_bad_input(
        oppen_home: Path, run_dir: Path, tmp_path: Path) -> None:
    chosen = tmp_path / "chosen.pt"
    proc = subprocess.run(oppen_cmd("policy", "select", "--run-dir", str(run_dir), "--seeds",
                                    "5-6,9", "--copy-to", str(chosen), "--json"),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["seeds"] == [5, 6, 9] and len(out["checkpoints"]) == 3
    assert out["chosen"] == out["checkpoints"][0]["path"]
    assert chosen.read_bytes() == Path(out["chosen"]).read_bytes()
    LoadedPolicy.from_checkpoint(chosen)  # a usable checkpoint

    missing = subprocess.run(oppen_cmd("policy", "select", "--run-dir", str(tmp_path / "no"),
                                       "--seeds", "1"), capture_output=True, text=True,
                             timeout=180)
    assert missing.returncode != 0 and "checkpoint folder not found" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_seed_lists_take_ranges_and_name_what_is_wrong() -> None:
    from app.cli.common import OppenError
    from app.cli.policy_cmds import parse_seeds as _seeds

    assert _seeds("100-103,7") == [100, 101, 102, 103, 7]
    assert _seeds("42, 43") == [42, 43] and _seeds(None) is None
    for raw, message in (("9-5", "low-high ranges"), ("a", "low-high ranges"),
                         ("1-x", "low-high ranges"), (",", "at least one seed"),
                         ("0-20000", "at most 10,000"), ("-5", ">= 0"),
                         ("0-10000000000", "at most 10,000")):  # refused, not expanded
        with pytest.raises(OppenError, match=message):
            _seeds(raw)
