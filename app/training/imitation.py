"""A warm start by imitation: before PPO's first update, the policy learns to copy a
heuristic's decisions (behaviour cloning, cross-entropy under the same masks) and the value
head learns the returns the heuristic earned, so PPO starts from the heuristic's level with
a critic that already knows it, instead of from a random policy.

On lublin_256 under RLScheduler's protocol the heuristic F1 is strong (on 40 drawn windows it
beats a policy PPO trained from scratch for 3M steps); starting from it lets PPO spend its
budget on improving a good rule rather than on rediscovering it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from app.training.adam import Adam
from app.training.config import TrainConfig
from app.training.normalize import RunningMeanStd
from app.training.policy import MaskedPolicy


@dataclass(frozen=True)
class Demonstrations:
    obs: torch.Tensor  # [n, obs_dim]
    masks: torch.Tensor  # [n, actions] bool
    actions: torch.Tensor  # [n]
    returns: torch.Tensor  # [n]: the discounted return from each decision to its episode's end


def collect(cfg: TrainConfig, steps: int) -> Demonstrations:
    """At least `steps` decisions of the heuristic `cfg.imitate`, in whole episodes (a return
    needs its episode's end) of the run's workload, on seeds far from the training
    episodes'."""
    import simrs

    options = cfg.env_options()
    obs_rows: list[np.ndarray] = []
    mask_rows: list[np.ndarray] = []
    action_rows: list[int] = []
    return_rows: list[float] = []
    seed = cfg.seed * 1_000_003 + 500_000_000  # far from the training segments' seeds
    env = simrs.ClusterEnv(cfg.mode, cfg.env_config(), seed, **options)
    while len(action_rows) < steps:
        obs, info = env.reset(seed=seed)
        seed += 1
        rewards: list[float] = []
        done = False
        while not done:
            action = env.heuristic_action(cfg.imitate)
            obs_rows.append(obs)
            mask_rows.append(info["action_mask"])
            action_rows.append(int(action))
            obs, reward, done, _, info = env.step(action)
            rewards.append(reward)
        running = 0.0
        episode_returns = []
        for r in reversed(rewards):
            running = r + cfg.gamma * running
            episode_returns.append(running)
        return_rows.extend(reversed(episode_returns))
    return Demonstrations(torch.as_tensor(np.stack(obs_rows)),
                          torch.as_tensor(np.stack(mask_rows)).bool(),
                          torch.as_tensor(action_rows, dtype=torch.long),
                          torch.as_tensor(return_rows, dtype=torch.float32))


def imitate(policy: MaskedPolicy, value_rms: RunningMeanStd, data: Demonstrations,
            cfg: TrainConfig, rng: np.random.Generator,
            device: torch.device) -> dict[str, float]:
    """Behaviour cloning of the demonstrations' actions and regression of their returns
    (normalised like PPO's value targets), `cfg.imitate_epochs` passes of `minibatch_size`
    rows with a fresh Adam at `cfg.imitate_lr` (or `cfg.lr` where that is 0). Returns the
    last epoch's losses and accuracy."""
    if cfg.norm_value:
        value_rms.update(data.returns)
        targets = value_rms.normalize(data.returns)
    else:
        targets = data.returns
    optimizer = Adam(policy.parameters(), lr=cfg.imitate_lr or cfg.lr, eps=1e-5)
    n = len(data.actions)
    size = min(cfg.minibatch_size, n)
    indices = np.arange(n)
    totals: dict[str, float] = {}
    for _epoch in range(cfg.imitate_epochs):
        rng.shuffle(indices)
        totals = {"policy": 0.0, "value": 0.0, "correct": 0.0}
        for lo in range(0, n, size):
            mb = torch.as_tensor(indices[lo:lo + size])
            obs, masks = data.obs[mb].to(device), data.masks[mb].to(device)
            actions = data.actions[mb].to(device)
            logits, value = policy.heads(obs, masks)
            policy_loss = nn.functional.cross_entropy(logits, actions)
            value_loss = 0.5 * ((value - targets[mb].to(device)) ** 2).mean()
            loss = policy_loss + cfg.vf_coef * value_loss
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(policy.parameters(), cfg.max_grad_norm)
            optimizer.step()
            totals["policy"] += policy_loss.item() * len(mb)
            totals["value"] += value_loss.item() * len(mb)
            totals["correct"] += (logits.argmax(-1) == actions).sum().item()
    return {"imitation/policy_loss": totals["policy"] / n,
            "imitation/value_loss": totals["value"] / n,
            "imitation/accuracy": totals["correct"] / n,
            "imitation/decisions": float(n)}


def warm_start(policy: MaskedPolicy, value_rms: RunningMeanStd, cfg: TrainConfig,
               rng: np.random.Generator, device: torch.device) -> dict[str, Any]:
    """Collects the demonstrations and imitates them (what the Trainer calls once, before
    its first update)."""
    data = collect(cfg, cfg.imitate_steps)
    return imitate(policy, value_rms, data, cfg, rng, device)
