"""Pick mode under RLScheduler's protocol: the environment reproduces the published heuristic
table, training and `oppen eval` run on it, and the shipped pick policy still beats SJF."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

import simrs
from app.core.errors import ConfigError
from app.training.config import TrainConfig
from app.training.evaluate import heuristic_chooser, policy_chooser
from app.training.inference import LoadedPolicy
from app.training.ppo import Trainer
from app.training.rlscheduler_eval import WINDOW_LEN, windows
from tests.support.paths import REPO, TRACES
from tests.support.processes import oppen_cmd

LUBLIN = TRACES / "lublin_256.swf"
PRETRAINED = REPO / "pretrained"
needs_trace = pytest.mark.skipif(not LUBLIN.is_file(),
                                 reason=f"shared traces not found at {TRACES}")


def _drive(env: simrs.ClusterEnv, start: int, choose) -> float:  # type: ignore[no-untyped-def]
    obs, info = env.reset(options={"start": start})
    done = False
    while not done:
        obs, _, done, _, info = env.step(choose(env, obs, info["action_mask"]))
    return float(env.metrics()["mean_bounded_slowdown"])


@needs_trace
@pytest.mark.parametrize("backfill", ["none", "shadow"])
def test_heuristics_driven_through_the_env_reproduce_the_replay(backfill: str) -> None:
    trace = simrs.load_trace(LUBLIN)
    starts = list(simrs.RLSCHEDULER_WINDOWS)
    env = simrs.ClusterEnv("pick", None, 0, trace=trace, episode_length=WINDOW_LEN,
                           protocol="rlscheduler", backfill=backfill, reward="bsld_terminal")
    for policy in ("fcfs", "sjf", "f1"):
        driven = [_drive(env, s, heuristic_chooser(policy)) for s in starts]
        replayed = simrs.replay_compat(trace, policy, starts, backfill == "shadow")
        assert driven == pytest.approx(replayed, rel=1e-12)
    # The published means (RLScheduler, SC'20): F1 258.37 without backfilling, SJF 73.31 with.
    f1 = np.mean([_drive(env, s, heuristic_chooser("f1")) for s in starts])
    sjf = np.mean([_drive(env, s, heuristic_chooser("sjf")) for s in starts])
    assert round(float(f1 if backfill == "none" else sjf), 2) == (
        258.37 if backfill == "none" else 73.31)


def test_the_protocol_is_checked_before_any_simulator_starts() -> None:
    with pytest.raises(ConfigError, match="mode=pick and a trace"):
        TrainConfig(protocol="rlscheduler", mode="place")
    with pytest.raises(ConfigError, match="none or shadow"):
        TrainConfig(protocol="rlscheduler", mode="pick", trace="x.swf", backfill="easy",
                    reward="bsld_dense")
    with pytest.raises(ConfigError, match="rewards bsld_dense"):
        TrainConfig(protocol="rlscheduler", mode="pick", trace="x.swf", reward="wait")
    with pytest.raises(ConfigError, match="choose simrs or rlscheduler"):
        TrainConfig.from_dict({"protocol": "slurm"})
    with pytest.raises(simrs.ConfigError, match="replays a trace"):
        simrs.ClusterEnv("pick", None, 0, protocol="rlscheduler")


@needs_trace
def test_windows_are_the_published_ones_unless_seeds_are_given() -> None:
    assert windows(10_000) == list(simrs.RLSCHEDULER_WINDOWS)
    drawn = windows(10_000, [1, 2])
    assert len(drawn) == 2 and all(0 <= s <= 10_000 - WINDOW_LEN for s in drawn)
    assert drawn == windows(10_000, [1, 2])  # seeded
    with pytest.raises(ConfigError, match="at least 1024 jobs"):
        windows(500)


@needs_trace
def test_a_protocol_run_trains_and_oppen_eval_reports_both_backfill_settings(
        oppen_home: Path, tmp_path: Path) -> None:
    cfg = TrainConfig(mode="pick", trace=str(LUBLIN), protocol="rlscheduler",
                      reward="bsld_dense", episode_length=64, num_envs=4, rollout_steps=64,
                      total_timesteps=512, num_minibatches=2, update_epochs=1, window=32)
    result = Trainer(cfg, checkpoint_dir=tmp_path).run()
    assert result.global_step == 512 and np.isfinite(result.mean_episode_return)
    proc = subprocess.run(oppen_cmd("eval", "--checkpoint", str(tmp_path / "latest.pt"),
                                    "--seeds", "7", "--json"),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["protocol"] == "rlscheduler" and out["windows"] == windows(10_000, [7])
    assert set(out["results"]) == {"ppo", "fcfs", "sjf", "f1"}
    for row in out["results"].values():
        assert row["bsld_no_backfill"] >= 1 and row["bsld_shadow_backfill"] >= 1
    # Shadow backfilling never hurts SJF's bounded slowdown on this window.
    sjf = out["results"]["sjf"]
    assert sjf["bsld_shadow_backfill"] <= sjf["bsld_no_backfill"]
    missing = subprocess.run(oppen_cmd("eval", "--checkpoint", str(tmp_path / "latest.pt"),
                                       "--trace", str(tmp_path / "gone.swf")),
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode != 0 and "Traceback" not in missing.stderr
    assert "gone.swf" in missing.stderr


# Two of RLScheduler's windows per shipped policy where it won by a wide margin when shipped
# (it does not win every window; docs/benchmarks.md has them all): without backfilling, bsld
# 155 vs SJF's 251 at job 2756 and 153 vs 214 at 4299 (the policy shipped 2026-12-06); with
# shadow backfilling, 29 vs 70 at 1981 and 26 vs 121 at 7762.
SHIPPED = [("pick-lublin256.pt", "none", (2756, 4299)),
           ("pick-lublin256-shadow.pt", "shadow", (1981, 7762))]


@needs_trace
@pytest.mark.parametrize(("name", "backfill", "starts"), SHIPPED)
def test_the_shipped_pick_policy_still_beats_sjf_on_two_windows(
        name: str, backfill: str, starts: tuple[int, int]) -> None:
    """A regression guard for the shipped checkpoints: on two windows, with the backfilling
    each was trained for, its bounded slowdown stays below SJF's."""
    import torch

    loaded = LoadedPolicy.from_checkpoint(PRETRAINED / name)
    cfg = loaded.config
    assert cfg.protocol == "rlscheduler" and cfg.backfill == backfill
    trace = simrs.load_trace(LUBLIN)
    env = simrs.ClusterEnv("pick", None, 0, trace=trace, episode_length=WINDOW_LEN,
                           protocol="rlscheduler", window=cfg.window, reward=cfg.reward,
                           backfill=backfill)
    choose = policy_chooser(loaded.policy, torch.device("cpu"))
    for start in starts:
        ppo = _drive(env, start, choose)
        sjf = _drive(env, start, heuristic_chooser("sjf"))
        assert ppo < sjf, f"{name}, window {start}: ppo {ppo:.1f} vs sjf {sjf:.1f}"


@needs_trace
def test_the_shipped_pick_policy_beats_f1_on_windows_that_did_not_choose_it() -> None:
    """The issue's bar for the no-backfilling policy, guarded on the 40 drawn windows that
    took no part in choosing it (seeds 140-179; the rule chose on 100-139): its mean bounded
    slowdown stays at least 5% below F1's there (232.41 against 254.78 when shipped,
    2026-12-06)."""
    from app.training.selection import lockstep_metric

    loaded = LoadedPolicy.from_checkpoint(PRETRAINED / "pick-lublin256.pt")
    cfg = loaded.config
    assert cfg.protocol == "rlscheduler" and cfg.backfill == "none"
    seeds = list(range(140, 180))
    ppo = lockstep_metric(loaded, cfg, seeds)
    trace = simrs.load_trace(LUBLIN)
    starts = windows(trace.num_jobs, seeds)
    f1 = float(np.mean(simrs.replay_compat(trace, "f1", starts, False, "bsld", WINDOW_LEN)))
    assert f1 == pytest.approx(254.78, abs=0.01)  # the windows are the ones documented
    # 8.8% below when shipped; the policy shipped before it (253.75 there) would fail.
    assert ppo < 0.95 * f1, f"shipped pick policy {ppo:.2f} against F1's {f1:.2f}"


@needs_trace
def test_a_shipped_checkpoints_trace_is_found_from_any_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Its recipe names the trace from the repository root ("../shared/traces/...").
    monkeypatch.chdir(tmp_path)
    loaded = LoadedPolicy.from_checkpoint(PRETRAINED / "pick-lublin256.pt")
    assert Path(loaded.config.trace).resolve() == LUBLIN.resolve()
    # A copy far from the checkout finds it in the trace folders, by name.
    far = tmp_path / "elsewhere" / "deep"
    far.mkdir(parents=True)
    copy = far / "pick.pt"
    copy.write_bytes((PRETRAINED / "pick-lublin256.pt").read_bytes())
    assert LoadedPolicy.from_checkpoint(copy).config.trace == "../shared/traces/lublin_256.swf"
    found = LoadedPolicy.from_checkpoint(copy, trace_dirs=[LUBLIN.parent]).config.trace
    assert Path(found) == LUBLIN.parent / "lublin_256.swf"
