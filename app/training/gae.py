"""Generalized advantage estimation, as a plain reversed loop that reads like the equation."""

from __future__ import annotations

import torch


def compute_gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    dones: torch.Tensor,
    next_value: torch.Tensor,
    next_done: torch.Tensor,
    gamma: float,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages and returns for a rollout of shape [T, N].

    ``dones[t]`` is 1 where observation t starts a new episode (CleanRL's convention), so the
    bootstrap from t+1 is cut when ``dones[t + 1]`` is set.

        delta_t = r_t + gamma * V(s_{t+1}) * (1 - done_{t+1}) - V(s_t)
        A_t     = delta_t + gamma * lam * (1 - done_{t+1}) * A_{t+1}
    """
    steps = rewards.shape[0]
    advantages = torch.zeros_like(rewards)
    last = torch.zeros_like(next_value)
    for t in reversed(range(steps)):
        if t == steps - 1:
            nonterminal = 1.0 - next_done
            next_values = next_value
        else:
            nonterminal = 1.0 - dones[t + 1]
            next_values = values[t + 1]
        delta = rewards[t] + gamma * next_values * nonterminal - values[t]
        last = delta + gamma * lam * nonterminal * last
        advantages[t] = last
    return advantages, advantages + values
