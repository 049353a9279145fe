"""The pick and hierarchical policies' per-entity layers through simrs's fused forward and
backward pass (app/training/entity_layers.py): the same outputs and gradients as PyTorch's
layers on observations from simrs's own environments, chosen where they apply."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import simrs
from app.core.errors import ConfigError
from app.training.config import TrainConfig
from app.training.policy import ALIGNMENT_GAIN, HierarchicalPolicy, MaskedPolicy, PickPolicy
from app.training.ppo import Trainer
from tests.support.paths import REPO
from tests.support.policies import fused_pair
from tests.support.rollouts import random_rollout


def _assert_same(reference: MaskedPolicy, fused: MaskedPolicy, obs: torch.Tensor,
                 mask: torch.Tensor) -> None:
    for a, b in ((reference.logits(obs, mask), fused.logits(obs, mask)),
                 (reference.value(obs), fused.value(obs))):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-4)
    actions = torch.multinomial(mask.float() + 1e-9 * (~mask.any(1, keepdim=True)), 1)[:, 0]
    grads = []
    for policy in (reference, fused):
        policy.zero_grad()
        _, logprob, entropy, value = policy.act(obs, mask, actions)
        logits = policy.logits(obs, mask)
        # PPO's terms, plus the allowed logits themselves: a softmax alone is blind to the
        # output bias, whose gradient would then be zero on both sides.
        raw = torch.where(mask, logits, torch.zeros_like(logits)).sum(dim=1)
        loss = (logprob * 1.3).mean() - 0.01 * entropy.mean() + ((value - 0.5) ** 2).mean() \
            + 0.1 * raw.mean()
        loss.backward()
        grads.append({k: p.grad.clone() for k, p in policy.named_parameters()})
    for name, want in grads[0].items():
        got = grads[1][name]
        scale = float(want.abs().max()) + 1e-6
        assert float((got - want).abs().max()) <= 1e-4 * scale, name


@pytest.mark.parametrize(("hidden", "rows"), [(32, 1), (5, 200), (40, 1500)])
def test_fused_pick_layers_give_pytorchs_outputs_and_gradients(hidden: int, rows: int) -> None:
    # 1 and 200 rows run on the calling thread, 1,500 across rayon's threads.
    obs, mask = random_rollout("pick", rows, seed=hidden, window=32)
    assert bool((obs.reshape(rows, 32, 8)[..., 7] > 0).any())  # some queue to score
    reference, fused = fused_pair(PickPolicy, seed=hidden, hidden=hidden)
    _assert_same(reference, fused, obs, mask)


@pytest.mark.parametrize(("hidden", "rows", "alignment"),
                         [(16, 1, False), (24, 300, False), (64, 900, False), (24, 300, True)])
def test_fused_hierarchical_layers_give_pytorchs_outputs_and_gradients(
        hidden: int, rows: int, alignment: bool) -> None:
    obs, mask = random_rollout("hierarchical", rows, seed=hidden, window=24)
    if rows > 1:
        assert {0.0, 1.0} <= set(obs[:, 0].tolist())  # both phases
    reference, fused = fused_pair(HierarchicalPolicy, seed=hidden, num_hosts=12, hidden=hidden,
                                  host_alignment=alignment)
    if alignment:  # away from its zero start, so that the term shows in the outputs
        with torch.no_grad():
            for policy in (reference, fused):
                policy.alignment.weight.copy_(torch.tensor([[3.0, -1.0, 0.5, 2.0]]))
    _assert_same(reference, fused, obs, mask)


def test_host_alignment_scores_tetris_alignment_and_trains_its_weights() -> None:
    """With the per-host scorer silenced, weights (1, 0, 0, 1) (over the inputs' gain) rank
    hosts as Tetris does:
    the chosen job's cores times free cores plus its memory times free memory."""
    torch.manual_seed(0)
    policy = HierarchicalPolicy(num_hosts=3, hidden=8, host_alignment=True)
    with torch.no_grad():
        policy.host_scorer[2].weight.zero_()
        policy.alignment.weight.copy_(torch.tensor([[1.0, 0.0, 0.0, 1.0]]) / ALIGNMENT_GAIN)
    chosen = torch.tensor([0.0, 0.5, 0.5, 0.1, 1.0, 1.0, 1.0, 1.0])  # core-heavy
    # Utilisation (cores, memory), then size over the largest (cores, memory).
    hosts = torch.tensor([[0.0, 0.9, 1.0, 1.0],   # free: cores 1.0, memory 0.1
                          [0.9, 0.0, 1.0, 1.0],   # free: cores 0.1, memory 1.0
                          [0.5, 0.5, 1.0, 1.0]])  # free: 0.5 each
    obs = torch.cat([torch.tensor([1.0]), chosen, hosts.reshape(-1),
                     torch.zeros(2 * 8)]).unsqueeze(0)
    mask = torch.tensor([[True, True, True]])
    logits = policy.logits(obs, mask)[0]
    # Tetris: 0.5*1.0 + 0.1*0.1 = 0.51, 0.5*0.1 + 0.1*1.0 = 0.15, 0.5*0.5 + 0.1*0.5 = 0.30
    spread = logits - logits[0]
    torch.testing.assert_close(spread, torch.tensor([0.0, 0.15 - 0.51, 0.30 - 0.51]))
    assert policy.greedy(obs, mask).tolist() == [0]
    policy.logits(obs, mask)[0, 1].backward()
    assert float(policy.alignment.weight.grad.abs().sum()) > 0


def test_host_alignment_is_refused_outside_the_hierarchical_mode() -> None:
    with pytest.raises(ConfigError, match="host_alignment: only the hierarchical mode"):
        TrainConfig(mode="pick", host_alignment=True)


def test_the_fused_pass_is_chosen_where_it_is_the_faster_or_asked_for() -> None:
    tiny = dict(num_envs=2, rollout_steps=8, total_timesteps=16, device="cpu", num_hosts=8)
    assert Trainer(TrainConfig(**tiny, mode="hierarchical", window=8)).policy.fused  # auto
    assert not Trainer(TrainConfig(**tiny, mode="hierarchical", window=8,
                                   host_layers="torch")).policy.fused
    # Pick's packed matmuls run faster in PyTorch (docs/benchmarks.md): auto leaves them there.
    assert not Trainer(TrainConfig(**tiny, mode="pick", window=8)).policy.fused
    assert Trainer(TrainConfig(**tiny, mode="pick", window=8, host_layers="fused")).policy.fused
    # The window context reads the pooled embedding inside the scorer: PyTorch's layers.
    assert not Trainer(TrainConfig(**tiny, mode="pick", window=8, host_layers="fused",
                                   pick_context=True)).policy.fused


def test_the_native_entity_layers_refuse_bad_packing_and_aliasing() -> None:
    h, inputs = 4, 3
    w = [np.zeros((h, inputs), np.float32), np.zeros(h, np.float32),
         np.zeros((h, h), np.float32), np.zeros(h, np.float32), np.zeros((h, h), np.float32),
         np.zeros(h, np.float32)]
    layers = simrs.EntityLayers(*w, 0.0)
    x = np.zeros((5, inputs), np.float32)
    offsets = np.array([0, 2, 5], np.int64)
    weight, scored = np.ones(5, np.float32), np.ones(5, np.int8)
    share = np.zeros((2, h), np.float32)
    logits, pooled = np.empty(5, np.float32), np.empty((2, h), np.float32)
    layers.forward(x, offsets, weight, scored, share, logits, pooled)
    assert (logits == 0).all() and (pooled == 0).all()
    with pytest.raises(simrs.ConfigError, match="offsets must not decrease"):
        layers.forward(x, np.array([0, 3, 2], np.int64), weight, scored, share, logits, pooled)
    with pytest.raises(simrs.ConfigError, match="x holds 15 values"):
        layers.forward(x, np.array([0, 2, 6], np.int64), weight, scored, share, logits, pooled)
    with pytest.raises(simrs.ConfigError, match="offsets must be a int64 array"):
        layers.forward(x, offsets.astype(np.int32), weight, scored, share, logits, pooled)
    with pytest.raises(simrs.ConfigError, match="must not share memory"):
        layers.forward(x, offsets, weight, scored, share, logits, x.reshape(-1)[:2 * h])
    with pytest.raises(simrs.ConfigError, match="NaN"):
        simrs.EntityLayers(*w[:5], np.full(h, np.nan, np.float32), 0.0)


def test_masked_sampling_never_picks_an_invalid_job_or_host_at_10000_jobs() -> None:
    """Snapshots of a 10,000-job episode whose queue passes a thousand jobs, both phases:
    every sampled action, including draws at the ends of [0, 1), is allowed by the mask."""
    config = {"num_hosts": 160, "episode_length": 10_000, "max_jobs_per_step": 50,
              "mean_interarrival_s": 1.5, "host_cores": (8, 64),
              "host_mem_mb": (32_768, 262_144), "job_cores": (1, 8),
              "job_mem_mb": (1_024, 32_768)}
    env = simrs.ClusterEnv("hierarchical", config, 11)
    obs, info = env.reset(seed=11)
    rows, masks, done, step = [], [], False, 0
    while not done:
        if step % 1_000 in (0, 1):  # a job decision, then the host decision after it
            rows.append(obs.copy())
            masks.append(info["action_mask"].copy())
        obs, _r, done, _t, info = env.step(env.heuristic_action("sjf+best_fit"))
        step += 1
    o = torch.as_tensor(np.stack(rows))
    m = torch.as_tensor(np.stack(masks)).bool()
    assert o.shape[1] == 1 + 8 + 160 * 4 + 10_000 * 8 and m.shape[1] == 10_000
    assert int(m[o[:, 0] == 0].sum(1).max()) > 1_000  # a long queue of fitting jobs
    assert bool((o[:, 0] == 1).any())  # and host decisions
    torch.manual_seed(3)
    for fused in (True, False):
        policy = HierarchicalPolicy(160, hidden=32, fused=fused)
        with torch.no_grad():
            for uniforms in (torch.rand(len(o)), torch.zeros(len(o)),
                             torch.full((len(o),), 1.0 - 1e-7)):
                action, logprob, _ = policy.sample(o, m, uniforms)
                assert bool(m[torch.arange(len(o)), action].all()), fused
                assert bool(torch.isfinite(logprob).all())
            for _ in range(5):  # PyTorch's own sampler too
                action = policy.act(o, m)[0]
                assert bool(m[torch.arange(len(o)), action].all()), fused


def test_bench_train_modes_measure_the_shipped_recipes_network(oppen_home: object) -> None:
    """`oppen bench train --mode pick` runs the shipped pick recipe's network and batch (its
    trace found from the checkout, whatever the working directory); `--workers` measures
    place training only; the paired ratios are taken within each pair."""
    import statistics
    import subprocess

    from app.bench.entity_train import bench_config, run
    from tests.support.processes import oppen_cmd

    pick = bench_config("pick", iterations=2)
    recipe = TrainConfig.from_file(REPO / "pretrained" / "pick-lublin256.toml")
    assert (pick.hidden, pick.num_envs, pick.rollout_steps, pick.update_epochs) == (
        recipe.hidden, recipe.num_envs, recipe.rollout_steps, recipe.update_epochs)
    assert Path(pick.trace).is_absolute() and not pick.imitate and pick.eval_every == 0
    assert pick.total_timesteps == 2 * pick.batch_size
    small = {"num_hosts": 8, "window": 16, "num_envs": 4, "rollout_steps": 32,
             "episode_length": 64}
    hier = run("hierarchical", repeats=2, iterations=1, overrides=small)
    assert hier["auto_chooses"] == "fused" and len(hier["samples"]["ratio"]) == 2
    for i in range(2):
        assert hier["samples"]["ratio"][i] == pytest.approx(
            hier["samples"]["fused"][i] / hier["samples"]["torch_layers"][i])
    assert hier["fused_speedup"] == pytest.approx(statistics.median(hier["samples"]["ratio"]))
    proc = subprocess.run(oppen_cmd("bench", "train", "--mode", "pick", "--workers", "1,2"),
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 1 and "--workers measures place training" in proc.stderr
