"""The pick policy's training path through simrs (app/training/pick_update.py): a PPO
minibatch's loss sums and gradients, and a rollout step's draws, against the PyTorch path
they replace, on observations from simrs's own pick environments."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import simrs
from app.training import pick_update
from app.training.config import TrainConfig
from app.training.pick_update import FusedPickUpdate, fused_sample
from app.training.policy import PickPolicy
from app.training.ppo import Trainer, TrainingDiverged, minibatch_loss
from tests.support.policies import fused_pair
from tests.support.rollouts import random_rollout

WINDOW = 32


def _batch(rows: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A rollout's rows, the last of them with every action masked (PyTorch's distribution
    is then uniform over the window)."""
    obs, mask = random_rollout("pick", rows, seed=seed, window=WINDOW)
    mask[-1] = False
    return obs, mask


@pytest.mark.parametrize(("hidden", "clip", "ent_coef"), [(32, 0.2, 0.01), (8, 0.05, 0.0),
                                                          (40, 10.0, 0.3)])
def test_a_fused_minibatch_gives_autograds_loss_sums_and_gradients(hidden: int, clip: float,
                                                                   ent_coef: float) -> None:
    obs, mask = _batch(600, seed=hidden)
    reference, fused = fused_pair(PickPolicy, seed=hidden, hidden=hidden)
    gen = torch.Generator().manual_seed(hidden)
    with torch.no_grad():
        allowed = mask.float() + (~mask.any(1, keepdim=True)).float()
        actions = torch.multinomial(allowed, 1, generator=gen)[:, 0]
        _, logprob, _, _ = reference.act(obs, mask, actions)
    # Old log-probabilities off the current ones both ways, so that rows clip on each side.
    old = logprob + 0.3 * torch.randn(len(obs), generator=gen)
    targets = torch.randn(len(obs), generator=gen)
    adv = torch.randn(len(obs), generator=gen)
    rows = torch.randperm(len(obs), generator=gen)[:500].sort().values.flip(0)
    rows = torch.cat([rows, torch.tensor([len(obs) - 1])])  # the row that allows nothing
    cfg = TrainConfig(clip_coef=clip, ent_coef=ent_coef, vf_coef=0.7)
    size = 640  # more than the rows: a data-parallel worker's share of a minibatch

    loss, want = minibatch_loss(reference, obs[rows], mask[rows], actions[rows], old[rows],
                                adv[rows], targets[rows], cfg, size)
    loss.backward()
    update = FusedPickUpdate(fused, obs, mask, actions, old, targets)
    got = update.minibatch(rows.numpy(), adv[rows], clip, ent_coef, 0.7, size)

    torch.testing.assert_close(got, want, rtol=2e-4, atol=2e-4)
    if clip < 1:
        assert float(want[4]) > 10  # clipped rows were in the minibatch
    # Gradients that are zero but for rounding (a softmax is blind to a shared output bias)
    # are held to the largest gradient's scale.
    largest = max(float(p.grad.abs().max()) for p in reference.parameters())
    for (name, p), q in zip(reference.named_parameters(), fused.parameters(), strict=True):
        scale = float(p.grad.abs().max())
        assert float((q.grad - p.grad).abs().max()) <= 2e-4 * scale + 1e-6 * largest, name


def test_fused_sampling_draws_what_pytorchs_sampler_draws() -> None:
    obs, mask = _batch(800, seed=5)
    reference, fused = fused_pair(PickPolicy, seed=5, hidden=32)
    gen = torch.Generator().manual_seed(5)
    for uniforms in (torch.rand(len(obs), generator=gen), torch.zeros(len(obs)),
                     torch.full((len(obs),), 1.0 - 1e-7)):
        want = reference.sample(obs, mask, uniforms)
        got = fused.sample(obs, mask, uniforms)
        allowed = mask[torch.arange(len(obs)), got[0]]
        assert bool((allowed | ~mask.any(1)).all())
        same = got[0] == want[0]
        # Rounding may move a draw that lands on a boundary between two slots; no more.
        assert float(same.float().mean()) >= 0.99
        torch.testing.assert_close(got[1][same], want[1][same], rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(got[2], want[2], rtol=1e-4, atol=1e-4)
    # Without uniforms the fused path draws its own, still allowed.
    actions = fused.sample(obs, mask)[0]
    assert bool((mask[torch.arange(len(obs)), actions] | ~mask.any(1)).all())


def _tiny(**overrides: object) -> TrainConfig:
    return TrainConfig(mode="pick", window=WINDOW, hidden=16, num_envs=4, rollout_steps=32,
                       num_minibatches=2, update_epochs=2, total_timesteps=256, device="cpu",
                       eval_every=0, **overrides)


def test_the_trainer_updates_pick_through_simrs_only_on_the_fused_layers(
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = FusedPickUpdate.minibatch

    def counted(self: FusedPickUpdate, *args: object) -> torch.Tensor:
        calls.append(1)
        return real(self, *args)

    monkeypatch.setattr(FusedPickUpdate, "minibatch", counted)
    for layers, expected in (("fused", 2 * 2 * 2), ("torch", 0)):
        calls.clear()
        trainer = Trainer(_tiny(host_layers=layers))
        before = [p.detach().clone() for p in trainer.policy.parameters()]
        result = trainer.run()
        assert len(calls) == expected, layers
        assert result.global_step == 256
        moved = [not torch.equal(a, b) for a, b in zip(before, trainer.policy.parameters(),
                                                        strict=True)]
        assert all(moved), layers


def test_diverged_weights_stop_a_fused_update_as_they_stop_autograds() -> None:
    trainer = Trainer(_tiny(host_layers="fused"))
    assert pick_update.fused_update(trainer.policy, torch.zeros(2, WINDOW * 8),
                                    torch.ones(2, WINDOW, dtype=torch.bool), torch.zeros(2).long(),
                                    torch.zeros(2), torch.zeros(2)) is not None
    rows = trainer.cfg.batch_size
    obs, mask = _batch(rows, seed=9)
    with torch.no_grad():
        trainer.policy.value_head[0].weight[0, 0] = float("nan")
    actions = mask.float().argmax(1)
    zeros = torch.zeros(rows)
    with pytest.raises(TrainingDiverged, match="non-finite loss"):
        trainer._update(obs, mask, actions, zeros, zeros, zeros)


def test_the_native_pick_batch_refuses_masked_actions_and_bad_arrays() -> None:
    obs, mask = _batch(8, seed=3)
    o, m = obs.numpy(), mask.numpy().view(np.int8)
    lp, tg = np.zeros(8, np.float32), np.zeros(8, np.float32)
    allowed_row = int(np.flatnonzero(mask[:-1].any(1).numpy())[0])
    actions = mask.float().argmax(1).numpy().astype(np.int64)
    batch = simrs.PickBatch(o, m, actions, lp, tg)
    assert batch.rows == 8
    bad = actions.copy()
    bad[allowed_row] = int(np.flatnonzero(~mask[allowed_row].numpy())[0])
    with pytest.raises(simrs.ConfigError, match="not one of its allowed slots"):
        simrs.PickBatch(o, m, bad, lp, tg)
    nan = o.copy()
    nan[0, 0] = np.nan
    with pytest.raises(simrs.ConfigError, match="not finite"):
        simrs.PickBatch(nan, m, actions, lp, tg)
    with pytest.raises(simrs.ConfigError, match="int64"):
        simrs.PickBatch(o, m, actions.astype(np.int32), lp, tg)
    with pytest.raises(simrs.ConfigError, match="holds 7 values"):
        simrs.PickBatch(o, m, actions, lp[:7], tg)
    weights = {k: v.detach().numpy() for k, v in PickPolicy(8).named_parameters()}
    grads = {k: np.zeros_like(v) for k, v in weights.items()}
    adv = np.zeros(1, np.float32)
    with pytest.raises(simrs.ConfigError, match="row indices"):
        batch.minibatch(weights, np.array([8], np.int64), adv, 0.2, 0.0, 0.5, 1.0, grads)
    with pytest.raises(simrs.ConfigError, match="missing pick weight"):
        batch.minibatch({k: v for k, v in weights.items() if k != "scorer.0.bias"},
                        np.array([0], np.int64), adv, 0.2, 0.0, 0.5, 1.0, grads)
    with pytest.raises(simrs.ConfigError, match="finite"):
        batch.minibatch(weights, np.array([0], np.int64), adv, 0.2, 0.0, 0.5, float("nan"),
                        grads)
    # Gradient outputs: each present, writable, its weight's size, apart from the weights
    # and from each other; a refused call writes none of them.
    one = np.array([0], np.int64)
    with pytest.raises(simrs.ConfigError, match="grads: missing"):
        batch.minibatch(weights, one, adv, 0.2, 0.0, 0.5, 1.0,
                        {k: v for k, v in grads.items() if k != "encoder.0.bias"})
    with pytest.raises(simrs.ConfigError, match="elements"):
        batch.minibatch(weights, one, adv, 0.2, 0.0, 0.5, 1.0,
                        {**grads, "encoder.0.weight": np.zeros(3, np.float32)})
    frozen = grads["scorer.0.weight"].copy()
    frozen.flags.writeable = False
    with pytest.raises(simrs.ConfigError, match="writable"):
        batch.minibatch(weights, one, adv, 0.2, 0.0, 0.5, 1.0, {**grads, "scorer.0.weight": frozen})
    with pytest.raises(simrs.ConfigError, match="share memory"):
        batch.minibatch(weights, one, adv, 0.2, 0.0, 0.5, 1.0,
                        {**grads, "encoder.2.bias": weights["encoder.2.bias"]})
    with pytest.raises(simrs.ConfigError, match="share memory"):
        batch.minibatch(weights, one, adv, 0.2, 0.0, 0.5, 1.0,
                        {**grads, "encoder.2.bias": grads["encoder.0.bias"]})
    assert all(not g.any() for g in grads.values())
    out = np.empty(8, np.int64), np.empty(8, np.float32), np.empty(8, np.float32)
    with pytest.raises(simrs.ConfigError, match=r"not in \[0, 1\)"):
        simrs.pick_sample(weights, o, m, np.full(8, 1.0, np.float32), *out)
    with pytest.raises(simrs.ConfigError, match="must not share memory"):
        simrs.pick_sample(weights, o, m, np.zeros(8, np.float32), out[0], out[1], out[1])
    # The same arrays, well formed, are accepted.
    actions, _, _ = fused_sample(PickPolicy(8, fused=True), obs, mask, torch.zeros(8))
    assert bool((mask[torch.arange(8), actions] | ~mask.any(1)).all())
