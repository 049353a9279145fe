"""The `pick` policy's training path through simrs (simrs/src/nn/pick_update.rs): a rollout
step's decisions, and each PPO minibatch's loss with every gradient, one call each.

With the per-slot layers fused (entity_layers.py), most of a `pick` run was still PyTorch's
small operations around them: packing each window's slots, the masked softmax, the clipped
loss, the value head, autograd's bookkeeping for each, and the same again at every rollout
step. Here simrs packs an update's batch once and computes a minibatch's loss and gradients
in one call, and a rollout step in another; PyTorch keeps the gradient clipping and the
optimizer step. The loss is `Trainer._update`'s term by term, and the draw is
`MaskedPolicy.sample`'s by inverse CDF (tests/training/test_pick_update.py checks both
against the PyTorch path).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from app.training.host_layers import numpy_view
from app.training.policy import MaskedPolicy, PickPolicy, fused_on


def _weights(policy: PickPolicy) -> dict[str, Any]:
    return {name: numpy_view(p) for name, p in policy.named_parameters()}


def _int8(mask: torch.Tensor) -> Any:
    return numpy_view(mask.bool()).view(np.int8)  # bool's bytes, no copy


class FusedPickUpdate:
    """One update's batch, packed; `minibatch` fills every parameter's `.grad`."""

    def __init__(self, policy: PickPolicy, obs: torch.Tensor, mask: torch.Tensor,
                 actions: torch.Tensor, logprobs: torch.Tensor, targets: torch.Tensor) -> None:
        import simrs

        self.batch = simrs.PickBatch(numpy_view(obs), _int8(mask), numpy_view(actions.long()),
                                     numpy_view(logprobs.float()), numpy_view(targets.float()))
        # The parameters and NumPy views of them, once per update: the optimizer changes
        # them in place, so the views follow. simrs writes each minibatch's gradients into
        # `grads`, which become the parameters' `.grad`.
        self.params = dict(policy.named_parameters())
        self.weights = {name: numpy_view(p) for name, p in self.params.items()}
        self.grads = {name: torch.zeros_like(p) for name, p in self.params.items()}
        self.grad_views = {name: g.numpy() for name, g in self.grads.items()}

    def minibatch(self, rows: np.ndarray, adv: torch.Tensor, clip: float, ent_coef: float,
                  vf_coef: float, size: int) -> torch.Tensor:
        """The loss sums `[policy, value, entropy, approx_kl, clipped]` of the batch's `rows`
        (advantages `adv`, already normalised); each parameter's `.grad` is set to its
        gradient of the minibatch's loss, the sums over `size` rows."""
        if not all(bool(torch.isfinite(p).all()) for p in self.params.values()):
            # Diverged weights: NaN sums make Trainer._update raise TrainingDiverged, as
            # the autograd path's NaN loss does (simrs refuses non-finite weights).
            return torch.full((5,), float("nan"))
        stats = self.batch.minibatch(self.weights, np.ascontiguousarray(rows, dtype=np.int64),
                                     numpy_view(adv.float()), clip, ent_coef, vf_coef,
                                     float(size), self.grad_views)
        for name, p in self.params.items():
            p.grad = self.grads[name]
        return torch.tensor(stats, dtype=torch.float32)


def fused_update(policy: MaskedPolicy, obs: torch.Tensor, mask: torch.Tensor,
                 actions: torch.Tensor, logprobs: torch.Tensor,
                 targets: torch.Tensor) -> FusedPickUpdate | None:
    """The fused update for a `pick` policy on the fused layers (no window context, a CPU,
    float32); None for every other policy, which `Trainer._update` runs through autograd."""
    if not isinstance(policy, PickPolicy) or not fused_on(policy, obs):
        return None
    return FusedPickUpdate(policy, obs, mask, actions, logprobs, targets)


def fused_sample(policy: PickPolicy, obs: torch.Tensor, mask: torch.Tensor,
                 uniforms: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`MaskedPolicy.sample` in one call: each row's action, its log-probability and the
    row's value. Without `uniforms`, they are drawn here."""
    import simrs

    rows = obs.shape[0]
    if uniforms is None:
        uniforms = torch.rand(rows)
    actions = torch.empty(rows, dtype=torch.int64)
    logprobs, values = torch.empty(rows), torch.empty(rows)
    simrs.pick_sample(_weights(policy), numpy_view(obs), _int8(mask), numpy_view(uniforms.float()),
                      actions.numpy(), logprobs.numpy(), values.numpy())
    return actions, logprobs, values
