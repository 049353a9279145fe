"""The place policy's per-host layers through simrs's fused forward and backward pass
(app/training/host_layers.py): the same outputs and gradients as PyTorch's layers, chosen
where they apply, refused where they do not."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

import simrs
from app.core.errors import ConfigError
from app.training.config import TrainConfig
from app.training.policy import PickPolicy, PlacePolicy
from app.training.ppo import Trainer
from tests.support.policies import fused_pair


def _batch(rows: int, hosts: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    obs = torch.rand((rows, hosts * 4 + 2), generator=gen)
    mask = torch.rand((rows, hosts), generator=gen) < 0.7
    mask[0] = False  # a row with nothing allowed
    if rows > 1:
        mask[1] = True  # and one with everything allowed
    return obs, mask


def _loss(policy: PlacePolicy, obs: torch.Tensor, mask: torch.Tensor,
          actions: torch.Tensor) -> torch.Tensor:
    """PPO's terms, plus the allowed logits themselves: a softmax alone is blind to the
    output bias, whose gradient would then be zero on both sides."""
    _, logprob, entropy, value = policy.act(obs, mask, actions)
    logits = policy.logits(obs, mask)
    raw = torch.where(mask, logits, torch.zeros_like(logits)).sum(dim=1)
    return (logprob * 1.3).mean() - 0.01 * entropy.mean() + ((value - 0.5) ** 2).mean() \
        + 0.1 * raw.mean()


@pytest.mark.parametrize(("hidden", "rows"), [(16, 1), (5, 300), (40, 700), (16, 600)])
def test_fused_layers_give_pytorchs_outputs_and_gradients(hidden: int, rows: int) -> None:
    # 1 and 300 rows run on the calling thread, 600 and 700 across rayon's threads.
    reference, fused = fused_pair(PlacePolicy, seed=hidden, hidden=hidden)
    obs, mask = _batch(rows, 64, seed=rows)
    actions = torch.multinomial(mask.float() + 1e-6, 1).squeeze(1)
    for a, b in ((reference.logits(obs, mask), fused.logits(obs, mask)),
                 (reference.value(obs), fused.value(obs))):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)
    grads = []
    for policy in (reference, fused):
        policy.zero_grad()
        _loss(policy, obs, mask, actions).backward()
        grads.append({k: p.grad.clone() for k, p in policy.named_parameters()})
    for name, want in grads[0].items():
        got = grads[1][name]
        scale = float(want.abs().max()) + 1e-6
        assert float((got - want).abs().max()) <= 1e-4 * scale, name


def test_the_fused_pass_is_used_where_it_applies_and_pytorch_elsewhere() -> None:
    tiny = dict(num_envs=2, rollout_steps=8, total_timesteps=16, device="cpu")
    assert Trainer(TrainConfig(**tiny)).policy.fused  # auto, on a CPU
    assert not Trainer(TrainConfig(**tiny, host_layers="torch")).policy.fused
    assert not Trainer(TrainConfig(**tiny, hidden=200)).policy.fused  # wider than simrs's
    pick = Trainer(TrainConfig(**tiny, mode="pick", trace="", window=8))
    assert isinstance(pick.policy, PickPolicy)


def test_fused_where_it_cannot_run_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="host_layers=fused runs on a CPU"):
        TrainConfig(host_layers="fused", device="cuda")
    with pytest.raises(ConfigError, match="hidden 129"):
        TrainConfig(host_layers="fused", hidden=129)
    with pytest.raises(ConfigError, match="choose auto, fused or torch"):
        TrainConfig.from_dict({"host_layers": "rust"})


def test_checkpoints_from_before_the_option_resume_through_pytorch() -> None:
    old = TrainConfig().to_dict()
    del old["host_layers"]
    assert TrainConfig.of_checkpoint(old).host_layers == "torch"
    assert TrainConfig.of_checkpoint(TrainConfig().to_dict()).host_layers == "auto"


def test_the_native_layers_refuse_bad_shapes_and_aliasing() -> None:
    h, rows, hosts = 4, 3, 5
    w = [np.zeros((h, 6), np.float32), np.zeros(h, np.float32), np.zeros((h, h), np.float32),
         np.zeros(h, np.float32)]
    layers = simrs.PlaceHostLayers(*w, 0.0)
    obs = np.zeros((rows, hosts * 4 + 2), np.float32)
    masks = np.ones((rows, hosts), np.int8)
    share = np.zeros((rows, h), np.float32)
    logits, pooled = np.empty((rows, hosts), np.float32), np.empty((rows, h), np.float32)
    layers.forward(obs, masks, share, logits, pooled)
    assert (logits == 0).all() and (pooled == 0).all()
    with pytest.raises(simrs.ConfigError, match="share holds 9 values"):
        layers.forward(obs, masks, share[:, :3].copy(), logits, pooled)
    with pytest.raises(simrs.ConfigError, match="must not share memory"):
        layers.forward(obs, masks, share, logits, logits.reshape(-1)[:rows * h])
    with pytest.raises(simrs.ConfigError, match="g_share must not share memory"):
        layers.backward(obs, masks, share, logits, pooled, share)
    with pytest.raises(simrs.ConfigError, match="score_host.weight has 15 values"):
        simrs.PlaceHostLayers(w[0], w[1], w[2].reshape(-1)[:15].copy(), w[3], 0.0)
    with pytest.raises(simrs.ConfigError, match="NaN"):
        simrs.PlaceHostLayers(w[0], w[1], w[2], w[3], float("nan"))


def test_a_place_module_pickled_before_the_option_still_decides() -> None:
    """MLflow stores whole pickled modules; one from before `fused` existed has no such
    attribute and must fall back to PyTorch's layers."""
    reference, _ = fused_pair(PlacePolicy, seed=3, hidden=16)
    old = pickle.loads(pickle.dumps(reference))
    del old.__dict__["fused"]
    obs, mask = _batch(8, 64, seed=4)
    torch.testing.assert_close(old.logits(obs, mask), reference.logits(obs, mask))
