"""PPO with action masks on simrs's vector environment (CleanRL's ppo.py, reorganised so the
metrics sink is an argument and the loop can be tested without MLflow)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn, optim

from app.training.config import TrainConfig
from app.training.gae import compute_gae
from app.training.policy import PlacePolicy

MetricsSink = Callable[[dict[str, float], int], None]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        from app.core.errors import ConfigError

        raise ConfigError("device cuda was asked for but no CUDA device is available")
    return torch.device(name)


@dataclass
class TrainResult:
    policy: PlacePolicy
    global_step: int
    episodes: int
    mean_episode_return: float
    steps_per_second: float


def train(cfg: TrainConfig, log: MetricsSink | None = None) -> TrainResult:
    import simrs

    sink = log or (lambda _m, _s: None)
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)  # local generator: no global reseeding
    envs = simrs.BatchEnv("place", cfg.num_envs, cfg.workload(), cfg.seed, reward=cfg.reward)
    policy = PlacePolicy(cfg.hidden).to(device)
    optimizer = optim.Adam(policy.parameters(), lr=cfg.lr, eps=1e-5)

    T, N, D, H = cfg.rollout_steps, cfg.num_envs, envs.obs_dim, envs.action_dim
    obs_buf = torch.zeros((T, N, D), device=device)
    mask_buf = torch.zeros((T, N, H), dtype=torch.bool, device=device)
    actions = torch.zeros((T, N), dtype=torch.long, device=device)
    logprobs = torch.zeros((T, N), device=device)
    rewards = torch.zeros((T, N), device=device)
    dones = torch.zeros((T, N), device=device)
    values = torch.zeros((T, N), device=device)

    obs_np, mask_np = envs.reset(cfg.seed)
    next_obs = torch.as_tensor(obs_np, device=device)
    next_mask = torch.as_tensor(mask_np, device=device).bool()
    next_done = torch.zeros(N, device=device)
    global_step, episodes = 0, 0
    recent_returns: list[float] = []
    start = time.perf_counter()

    for iteration in range(1, cfg.num_iterations + 1):
        if cfg.anneal_lr:
            frac = 1.0 - (iteration - 1.0) / cfg.num_iterations
            optimizer.param_groups[0]["lr"] = frac * cfg.lr

        iter_episodes: list[tuple[float, float]] = []
        for t in range(T):
            global_step += N
            obs_buf[t], mask_buf[t], dones[t] = next_obs, next_mask, next_done
            with torch.no_grad():
                action, logprob, _, value = policy.act(next_obs, next_mask)
            values[t], actions[t], logprobs[t] = value, action, logprob
            obs_np, mask_np, reward_np, done_np, finished = envs.step(action.cpu().numpy())
            rewards[t] = torch.as_tensor(reward_np, device=device)
            next_obs = torch.as_tensor(obs_np, device=device)
            next_mask = torch.as_tensor(mask_np, device=device).bool()
            next_done = torch.as_tensor(done_np, device=device).float()
            for ep in finished:
                episodes += 1
                recent_returns.append(ep.episode_return)
                iter_episodes.append((ep.episode_return, ep.metrics["mean_wait_s"]))

        with torch.no_grad():
            next_value = policy.value(next_obs)
        advantages, returns = compute_gae(rewards, values, dones, next_value, next_done,
                                          cfg.gamma, cfg.lam)

        b_obs, b_mask = obs_buf.reshape(-1, D), mask_buf.reshape(-1, H)
        b_actions, b_logprobs = actions.reshape(-1), logprobs.reshape(-1)
        b_adv, b_returns, b_values = advantages.reshape(-1), returns.reshape(-1), values.reshape(-1)
        indices = np.arange(cfg.batch_size)
        clipfracs: list[float] = []
        approx_kl = torch.tensor(0.0)
        for _epoch in range(cfg.update_epochs):
            rng.shuffle(indices)
            for lo in range(0, cfg.batch_size, cfg.minibatch_size):
                mb = torch.as_tensor(indices[lo:lo + cfg.minibatch_size], device=device)
                # The stored mask makes the new log-prob comparable with the old one.
                _, newlogprob, entropy, newvalue = policy.act(b_obs[mb], b_mask[mb],
                                                              b_actions[mb])
                logratio = newlogprob - b_logprobs[mb]
                ratio = logratio.exp()
                with torch.no_grad():
                    approx_kl = ((ratio - 1) - logratio).mean()
                    clipfracs.append(((ratio - 1.0).abs() > cfg.clip_coef).float().mean().item())
                mb_adv = b_adv[mb]
                if len(mb) > 1:
                    mb_adv = (mb_adv - mb_adv.mean()) / (mb_adv.std() + 1e-8)
                pg_loss = torch.max(
                    -mb_adv * ratio,
                    -mb_adv * torch.clamp(ratio, 1 - cfg.clip_coef, 1 + cfg.clip_coef),
                ).mean()
                v_loss = 0.5 * ((newvalue - b_returns[mb]) ** 2).mean()
                entropy_loss = entropy.mean()
                loss = pg_loss - cfg.ent_coef * entropy_loss + cfg.vf_coef * v_loss
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(policy.parameters(), cfg.max_grad_norm)
                optimizer.step()
            if cfg.target_kl is not None and approx_kl.item() > cfg.target_kl:
                break

        sps = global_step / max(time.perf_counter() - start, 1e-9)
        var_y = b_returns.var()
        explained = float("nan") if var_y == 0 else float(1 - (b_returns - b_values).var() / var_y)
        sink({"charts/learning_rate": optimizer.param_groups[0]["lr"],
              "charts/SPS": sps,
              "losses/value_loss": v_loss.item(),
              "losses/policy_loss": pg_loss.item(),
              "losses/entropy": entropy_loss.item(),
              "losses/approx_kl": approx_kl.item(),
              "losses/clipfrac": float(np.mean(clipfracs)) if clipfracs else 0.0,
              "losses/explained_variance": explained,
              "charts/global_step": float(global_step),
              **_episode_means(iter_episodes)}, global_step)

    tail = recent_returns[-20:]
    return TrainResult(policy, global_step, episodes,
                       float(np.mean(tail)) if tail else float("nan"),
                       global_step / max(time.perf_counter() - start, 1e-9))


def _episode_means(episodes: list[tuple[float, float]]) -> dict[str, float]:
    """Per-iteration means, one MLflow write per iteration instead of one per episode."""
    if not episodes:
        return {}
    rets, waits = zip(*episodes, strict=True)
    return {"charts/episodic_return": float(np.mean(rets)),
            "charts/mean_wait_s": float(np.mean(waits)),
            "charts/episodes": float(len(episodes))}
